"""The portable fast path of the potential-field energy: screened, block-sparse, exact.

Only two kinds of pair carry force: same-label pairs (known from the labels) and different-label
pairs closer than delta_rep. Every other pair adds the constant delta_rep^-alpha, which is
counted, never evaluated. The points are cut into blocks of ``block`` rows:

1. Screen: a bfloat16 Gram matrix, one tile of rows at a time (memory O(tile * P)), marks the
   blocks that may hold a force-carrying pair; the threshold carries a proven error margin
   (``potentials.pair_screen_threshold``), so no such pair is missed. The screen is a parameter:
   ``pallas_field.screen`` is a CUDA kernel with the same contract.
2. Exact: every marked block is evaluated with float32 distances from explicit differences
   (never 2 - 2cos), in chunks of blocks inside a loop whose length follows the number of
   marked blocks. Collapsed inputs mark every block and are still exact, only slower.

The function returns the energy of the pairs whose first point lies in a range of rows and the
gradient for those rows, so it runs unchanged on one device or on a row shard of a mesh.
Pure XLA: runs on CPU, GPU and TPU.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from pfml_jax.losses.potentials import (FieldParams, clamped_distance, pair_potential,
                                        pair_weight, pair_screen_threshold, unpulled_pairs)


class BlockLayout(NamedTuple):
  """Static tiling of P points: ``shards * tiles_per_shard * blocks_per_tile * block`` rows."""

  block: int
  blocks_per_tile: int
  tiles_per_shard: int
  shards: int

  @property
  def padded_size(self) -> int:
    return self.shards * self.rows_per_shard

  @property
  def rows_per_shard(self) -> int:
    return self.tiles_per_shard * self.blocks_per_tile * self.block

  @staticmethod
  def for_points(num_points: int, *, shards: int = 1, block: int = 32,
                 row_tile: int = 1024) -> "BlockLayout":
    """The layout with the least padding for screen tiles of at most ``row_tile`` rows."""
    rows = math.ceil(num_points / shards)
    tiles = math.ceil(rows / max(row_tile, block))
    blocks_per_tile = math.ceil(math.ceil(rows / block) / tiles)
    return BlockLayout(block, blocks_per_tile, tiles, shards)


def _screen(points: jnp.ndarray, labels: jnp.ndarray, row_start: jnp.ndarray,
            layout: BlockLayout, field: FieldParams) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Which blocks may carry force, and how many valid same-label points each row has.

  Returns:
    activity: (row blocks of the shard, all blocks) bool.
    same_counts: (rows of the shard,) int32, the row itself included (0 for padding rows).
  """
  low = points.astype(jnp.bfloat16)
  squared_norms = jnp.sum(points * points, axis=1)  # not all points need be unit vectors
  tile_rows = layout.blocks_per_tile * layout.block
  num_blocks = points.shape[0] // layout.block

  def tile_activity(tile):
    start = row_start + tile * tile_rows
    rows = jax.lax.dynamic_slice_in_dim(low, start, tile_rows)
    row_labels = jax.lax.dynamic_slice_in_dim(labels, start, tile_rows)
    row_norms = jax.lax.dynamic_slice_in_dim(squared_norms, start, tile_rows)
    product = jnp.dot(rows, low.T, preferred_element_type=jnp.bfloat16)
    close = product.astype(jnp.float32) > pair_screen_threshold(row_norms, squared_norms, field)
    valid = (row_labels[:, None] >= 0) & (labels[None, :] >= 0)
    same = valid & (row_labels[:, None] == labels[None, :])
    force = same | (valid & close)
    activity = force.reshape(layout.blocks_per_tile, layout.block, num_blocks,
                             layout.block).any(axis=(1, 3))
    return activity, jnp.sum(same, axis=1, dtype=jnp.int32)

  activity, same_counts = jax.lax.map(tile_activity, jnp.arange(layout.tiles_per_shard))
  return activity.reshape(-1, num_blocks), same_counts.reshape(-1)


Screen = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray, BlockLayout, FieldParams],
                  tuple[jnp.ndarray, jnp.ndarray]]
"""(points, labels, row_start, layout, field) -> (activity, same_counts), as ``_screen``."""


# Blocks evaluated per loop step, bounded so that (chunk, block, block, dim) differences would
# stay moderate even if XLA materialised them (it fuses them into the reductions instead).
CHUNK_ELEMENTS = 2**26


def _chunk_blocks(layout: BlockLayout, dim: int, num_pairs_of_blocks: int) -> int:
  return max(1, min(num_pairs_of_blocks, CHUNK_ELEMENTS // (layout.block**2 * dim)))


def block_sparse_energy_and_grad(points: jnp.ndarray, labels: jnp.ndarray,
                                 row_start: jnp.ndarray, layout: BlockLayout,
                                 field: FieldParams,
                                 screen: Screen = _screen,
                                 unpulled_from: int | None = None
                                 ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Energy of the ordered pairs (a, b) with a in this shard's rows, and dU/dx_a for them.

  Args:
    points: (layout.padded_size, D) float32 points; padding rows have label -1.
    labels: (layout.padded_size,) int32 labels.
    row_start: first row of this shard (a traced scalar under shard_map).
    layout: the static tiling.
    field: the potential's hyperparameters.
    screen: marks the blocks that may carry force (default: the XLA screen above).
    unpulled_from: same-label pairs whose two rows both lie at or after this global row add
      nothing (``potentials.unpulled_pairs``); None: every pair counts. Same-label pairs never
      add the far constant, so leaving them out of the exact pass removes them entirely.
  Returns:
    (energy, gradient) with gradient of shape (layout.rows_per_shard, D): the gradient of the
    whole energy (every ordered pair, both ends) with respect to this shard's rows.
  """
  points, labels = jnp.asarray(points, jnp.float32), jnp.asarray(labels, jnp.int32)
  block, dim = layout.block, points.shape[1]
  num_blocks = points.shape[0] // block
  shard_blocks = layout.rows_per_shard // block

  activity, same_counts = screen(points, labels, row_start, layout, field)
  # Every valid different-label pair adds delta_rep^-alpha unless evaluated below.
  row_labels = jax.lax.dynamic_slice_in_dim(labels, row_start, layout.rows_per_shard)
  far_pairs = jnp.where(row_labels >= 0, jnp.sum(labels >= 0) - same_counts, 0)
  energy = field.far_repulsion * jnp.sum(far_pairs.astype(jnp.float32))
  num_active = jnp.sum(activity)
  row_block, col_block = jnp.nonzero(activity, size=activity.size, fill_value=0)

  point_blocks = points.reshape(num_blocks, block, dim)
  label_blocks = labels.reshape(num_blocks, block)
  first_row_block = row_start // block
  chunk = _chunk_blocks(layout, dim, activity.size)
  within = jnp.arange(block)

  def evaluate_chunk(step, carry):
    energy, gradient = carry
    index = step * chunk + jnp.arange(chunk)
    live = index < num_active
    index = jnp.minimum(index, activity.size - 1)
    local_i, j = row_block[index], col_block[index]
    i = local_i + first_row_block
    rows, cols = point_blocks[i], point_blocks[j]
    rows_label, cols_label = label_blocks[i], label_blocks[j]
    row_index = (i * block)[:, None, None] + within[None, :, None]
    col_index = (j * block)[:, None, None] + within[None, None, :]
    same = rows_label[:, :, None] == cols_label[:, None, :]
    counted = (live[:, None, None] & (rows_label[:, :, None] >= 0) &
               (cols_label[:, None, :] >= 0) & (row_index != col_index))
    if unpulled_from is not None:
      counted &= ~unpulled_pairs(row_index, col_index, same, unpulled_from)
    differences = rows[:, :, None, :] - cols[:, None, :, :]
    squared = jnp.sum(differences * differences, axis=-1)
    excess = (pair_potential(clamped_distance(squared), same, field) -
              jnp.where(same, 0.0, field.far_repulsion))
    energy += jnp.sum(jnp.where(counted, excess, 0.0))
    weight = jnp.where(counted, pair_weight(squared, same, field), 0.0)
    force = jnp.sum(weight[..., None] * differences, axis=2)
    return energy, gradient.at[local_i].add(force)

  num_chunks = (num_active + chunk - 1) // chunk
  gradient = jnp.zeros((shard_blocks, block, dim), jnp.float32)
  energy, gradient = jax.lax.fori_loop(0, num_chunks, evaluate_chunk, (energy, gradient))
  # U sums ordered pairs: each unordered pair appears twice with the same psi.
  return energy, 2.0 * gradient.reshape(layout.rows_per_shard, dim)
