"""The CUDA fast path of the potential-field energy: two Pallas kernels (Triton backend).

Same meaning and block structure as ``block_sparse_field`` (screen, evaluate the flagged blocks
exactly, count the rest), without XLA's P x P intermediates or its nonzero/gather/while chain:

1. Screen kernel, grid (row tiles of the shard, column splits). Each program computes bfloat16
   Gram tiles (float32 accumulation) of its rows against its share of the columns in registers,
   compares them with ``potentials.screen_threshold`` and writes one int32 flag per
   (row block, column block) and its rows' same-label counts. The P x P matrix is never
   written. On one shard (rows = columns) only the tiles reaching the upper triangle get a
   product, and the flags are ORed with their transpose: half the work.
2. Exact kernel, grid (row groups of ``exact_rows``, exact splits). Each program holds its rows
   and their gradient in registers and walks its share of the flagged column blocks of its
   block (the k-th flagged block goes to split k mod splits, so busy rows, e.g. the batch
   against its classes' proxies, are shared out evenly). For one column point at a time it
   forms the explicit float32 differences (never 2 - 2cos), their squared norms, the pair
   terms, and adds weight * difference to the gradient; it writes the gradient once (one
   partial per split, summed afterwards) and its share of the energy. No atomics, no
   intermediate larger than O(rows * D).

Every pair outside the flagged blocks is a different-label pair beyond delta_rep and adds the
constant delta_rep^-alpha: counted from the same-label counts, as in the XLA path. Collapsed
inputs flag every block and stay exact, only slower.

Triton needs power-of-two shapes for every array inside a kernel: tiles and blocks are powers
of two, the points are padded to whole tiles (label -1), the dimension to a multiple of the
screen's depth chunk (zero columns change no distance) and cut into power-of-two pieces in the
exact kernel. ``interpret=True`` runs both kernels in Pallas' interpreter on any backend (the
tests use it on CPU).
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pallas_triton

from pfml_jax.losses.block_sparse_field import BlockLayout
from pfml_jax.losses.potentials import (MIN_SQUARED_DISTANCE, FieldParams, clamped_distance,
                                        screen_threshold, unpulled_pairs)


class KernelConfig(NamedTuple):
  """Static tiling and launch parameters of the two kernels (sizes and warps: powers of two).

  The screen's tiles (128 x 64, depth chunks of 64; 8 warps hold the float32 accumulator at
  32 registers per thread) are large enough for efficient tensor-core products, and each is
  reduced to one flag per ``block`` x ``block`` sub-block inside the kernel, so the exact work
  follows 32-point blocks. An exact program takes ``exact_rows`` rows of a block and keeps
  them, their gradient and their differences to one column point in registers, in pieces of
  128 columns: with 16 rows and 16 warps each warp holds one row (16 values per thread and
  array at D = 512, about 64 registers), so a row's sums never leave its warp.
  """

  screen_rows: int = 128
  screen_cols: int = 64
  screen_depth: int = 64
  screen_warps: int = 8
  screen_stages: int = 3
  block: int = 32
  exact_rows: int = 16
  exact_warps: int = 16
  exact_stages: int = 2
  # Exact programs sharing one row group's flagged blocks (each writes a partial gradient,
  # summed afterwards); fewer when the row groups alone reach target_programs.
  exact_splits: int = 4
  # Programs per launch to aim for (several waves on 132 SMs, so the last wave is short):
  # column splits of the screen and exact splits are chosen to reach it.
  target_programs: int = 1024

  def validate(self) -> "KernelConfig":
    """Raises a ValueError naming the bad field; returns self."""
    for name, value in self._asdict().items():
      if not (isinstance(value, int) and value > 0):
        raise ValueError(f"pallas field: {name} must be a positive int, got {value!r}.")
      if name in _POWERS_OF_TWO and value & (value - 1):
        raise ValueError(f"pallas field: {name} must be a power of two, got {value}.")
    if min(self.screen_rows, self.screen_cols, self.screen_depth, self.block) < 16:
      raise ValueError("pallas field: screen tiles, depth and block must be >= 16 (Triton's "
                       f"smallest dot), got {self}.")
    if min(self.screen_rows, self.screen_cols) < self.block or self.exact_rows > self.block:
      raise ValueError("pallas field: screen tiles must hold whole blocks and exact_rows may "
                       f"not exceed block, got {self}.")
    return self


_POWERS_OF_TWO = ("screen_rows", "screen_cols", "screen_depth", "screen_warps", "block",
                  "exact_rows", "exact_warps")
DEFAULT_CONFIG = KernelConfig()


def kernel_layout(num_points: int, shards: int, config: KernelConfig) -> BlockLayout:
  """Row tiling for the kernels: each shard holds whole screen tiles (and whole column tiles)."""
  tile = max(config.screen_rows, config.screen_cols)
  rows = math.ceil(num_points / shards)
  return BlockLayout(config.block, tile // config.block, math.ceil(rows / tile), shards)


class _Grid(NamedTuple):
  """Static sizes derived from a layout, a config and the point dimension."""

  row_tiles: int  # screen row tiles per shard
  col_tiles: int  # screen column tiles over all points
  splits: int  # column splits of the screen (its second grid axis)
  tiles_per_split: int
  num_blocks: int  # column blocks over all points
  flag_width: int  # flags stored per row block: splits * tiles_per_split blocks, up to 2^k
  exact_splits: int  # programs per exact_rows rows in the exact kernel
  triangle: bool  # one shard: the screen computes only the upper triangle of tile pairs
  depth: int  # screen depth chunk
  padded_dim: int  # the dimension rounded up to a multiple of depth


def _grid(layout: BlockLayout, dim: int, config: KernelConfig) -> _Grid:
  row_tiles = layout.rows_per_shard // config.screen_rows
  col_tiles = layout.padded_size // config.screen_cols
  splits = max(1, min(col_tiles, math.ceil(config.target_programs / row_tiles)))
  tiles_per_split = math.ceil(col_tiles / splits)
  splits = math.ceil(col_tiles / tiles_per_split)
  tile_blocks = config.screen_cols // config.block
  exact_programs = layout.rows_per_shard // config.exact_rows
  exact_splits = max(1, min(config.exact_splits, config.target_programs // exact_programs))
  depth = min(config.screen_depth, pl.next_power_of_2(max(dim, 16)))
  return _Grid(row_tiles, col_tiles, splits, tiles_per_split, col_tiles * tile_blocks,
               pl.next_power_of_2(splits * tiles_per_split * tile_blocks), exact_splits,
               layout.shards == 1, depth, depth * math.ceil(dim / depth))


def _screen_kernel(start_ref, points_ref, labels_ref, flags_ref, counts_ref, *,
                   config: KernelConfig, grid: _Grid, threshold: float):
  """One (row tile, column split): flags of its (row block, column block) pairs, same counts.

  With ``grid.triangle`` (one shard: rows and columns are the same points) the column tiles
  that lie wholly below the diagonal get zero flags and only their same-label counts (labels
  alone, no product); the caller ORs the flags with their transpose.
  """
  rows, cols, block = config.screen_rows, config.screen_cols, config.block
  tile, split = pl.program_id(0), pl.program_id(1)
  local_row0 = tile * rows
  row0 = start_ref[0] + local_row0
  row_labels = labels_ref[pl.ds(row0, rows)]
  flag_rows = pl.ds(tile * (rows // block), rows // block)

  def same_labels(col_tile):
    """(rows, cols) valid same-label pairs, the column tile's first column, validity."""
    # The last split may reach past the last tile: it revisits that tile and counts nothing.
    live = col_tile < grid.col_tiles
    col0 = jnp.minimum(col_tile, grid.col_tiles - 1) * cols
    col_labels = labels_ref[pl.ds(col0, cols)]
    valid = (row_labels[:, None] >= 0) & (col_labels[None, :] >= 0) & live
    return valid & (row_labels[:, None] == col_labels[None, :]), col0, valid

  def column_tile(step, counts):
    col_tile = split * grid.tiles_per_split + step
    same, col0, valid = same_labels(col_tile)

    def depth_chunk(chunk, gram):
      depth = pl.ds(chunk * grid.depth, grid.depth)
      return gram + jax.lax.dot_general(
          points_ref[pl.ds(row0, rows), depth], points_ref[pl.ds(col0, cols), depth],
          (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)

    gram = jax.lax.fori_loop(0, grid.padded_dim // grid.depth, depth_chunk,
                             jnp.zeros((rows, cols), jnp.float32))
    # The threshold's margin bounds the error of a bf16-rounded bf16 product; the float32
    # accumulator compared here is closer to the exact cosine, so the same margin is safe.
    # A block may carry force if it holds a same-label pair or a valid pair above threshold:
    # its largest score, with same-label pairs at +inf and invalid pairs at -inf, tells.
    score = jnp.where(valid, jnp.where(same, jnp.inf, gram), -jnp.inf)
    # One axis per reduction: jax 0.11's Triton lowering of a multi-axis reduction fails
    # under a mesh whose axes are all Explicit.
    score = jnp.max(score.reshape(rows, cols // block, block), axis=2)
    score = jnp.max(score.reshape(rows // block, block, cols // block), axis=1)
    flags_ref[flag_rows, pl.ds(col_tile * (cols // block), cols // block)] = (
        score > threshold).astype(jnp.int32)
    return counts + jnp.sum(same.astype(jnp.int32), axis=1)

  def below_diagonal(step, counts):
    col_tile = split * grid.tiles_per_split + step
    flags_ref[flag_rows, pl.ds(col_tile * (cols // block), cols // block)] = jnp.zeros(
        (rows // block, cols // block), jnp.int32)
    return counts + jnp.sum(same_labels(col_tile)[0].astype(jnp.int32), axis=1)

  counts = jnp.zeros((rows,), jnp.int32)
  first_step = 0
  if grid.triangle:
    # Column tiles ending at or before this row tile's first row lie below the diagonal.
    first_step = jnp.clip(row0 // cols - split * grid.tiles_per_split, 0, grid.tiles_per_split)
    counts = jax.lax.fori_loop(0, first_step, below_diagonal, counts)
  counts = jax.lax.fori_loop(first_step, grid.tiles_per_split, column_tile, counts)
  counts_ref[split, pl.ds(local_row0, rows)] = counts


def _power(x: jnp.ndarray, exponent: float) -> jnp.ndarray:
  """x ** exponent; repeated products for integral exponents (the paper's alpha = 3)."""
  if float(exponent).is_integer():
    return jax.lax.integer_pow(x, int(exponent))
  return jnp.power(x, exponent)


def _pair_terms(squared: jnp.ndarray, same: jnp.ndarray,
                field: FieldParams) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(excess, weight) per pair: psi less delta_rep^-alpha for different-label pairs (that
  constant is counted for all of them elsewhere), and psi'(d) / d.

  ``potentials.pair_potential`` and ``pair_weight`` (the tests hold them equal), written with a
  single power of d per pair: the exact kernel's inner loop would otherwise spend most of its
  time in three general powers per pair.
  """
  d = clamped_distance(squared)
  inverse_power = _power(d, -field.alpha)  # d^-alpha
  attraction = jnp.where(d > field.delta_att, -inverse_power,
                         -float(field.delta_att) ** -field.alpha)
  repulsion = jnp.where(d < field.delta_rep, inverse_power - field.far_repulsion, 0.0)
  magnitude = field.alpha * inverse_power / (d * d)  # alpha * d^(-alpha - 2)
  weight = jnp.where(same, jnp.where(d > field.delta_att, magnitude, 0.0),
                     jnp.where(d < field.delta_rep, -magnitude, 0.0))
  return (jnp.where(same, attraction, repulsion),
          jnp.where(squared > MIN_SQUARED_DISTANCE, weight, 0.0))


def _exact_kernel(start_ref, points_ref, labels_ref, flags_ref, energy_ref, gradient_ref, *,
                  config: KernelConfig, grid: _Grid, field: FieldParams,
                  unpulled_from: int | None):
  """One (exact_rows rows, exact split): exact excess energy and forces of its flagged blocks."""
  block, num_rows = config.block, config.exact_rows
  row_group, split = pl.program_id(0), pl.program_id(1)
  local_row0 = row_group * num_rows
  row0 = start_ref[0] + local_row0
  # The dimension in pieces of at most 128 columns, each a power of two (Triton's rule); a
  # (rows, 128) piece puts one row per warp, so a row's sums stay within its warp.
  pieces = [pl.ds(start, width) for start, width in _pieces(grid.padded_dim, 128)]
  rows = [points_ref[pl.ds(row0, num_rows), piece] for piece in pieces]
  row_labels = labels_ref[pl.ds(row0, num_rows)]
  row_index = row0 + jax.lax.broadcasted_iota(jnp.int32, (num_rows,), 0)
  position = jax.lax.broadcasted_iota(jnp.int32, (grid.flag_width,), 0)
  flags = flags_ref[local_row0 // block, :]
  flagged = ((flags != 0) & (position < grid.num_blocks)).astype(jnp.int32)
  rank = jnp.cumsum(flagged) - 1
  mine = (flagged != 0) & (rank % grid.exact_splits == split)
  end = grid.flag_width

  def column_point(col, carry):
    """Adds the pairs (rows, point col) to the energy and gradient."""
    energy, gradient = carry
    # The column point, loaded once per row (an L1 broadcast) so that it arrives in the rows'
    # register layout (a (1, D) load makes Triton lay out the whole loop across warps).
    broadcast = jnp.full((num_rows,), col)
    differences = [row - points_ref[broadcast, piece] for row, piece in zip(rows, pieces)]
    squared = _row_sums([difference * difference for difference in differences])
    col_label = labels_ref[col]
    same = row_labels == col_label
    counted = (row_labels >= 0) & (col_label >= 0) & (row_index != col)
    if unpulled_from is not None:
      counted &= ~unpulled_pairs(row_index, col, same, unpulled_from)
    excess, weight = _pair_terms(squared, same, field)
    # U sums ordered pairs: each unordered pair appears twice with the same psi.
    weight = jnp.where(counted, 2.0 * weight, 0.0)
    return (energy + jnp.where(counted, excess, 0.0),
            [force + weight[:, None] * difference
             for force, difference in zip(gradient, differences)])

  def column_block(state):
    at, energy, gradient = state
    energy, gradient = jax.lax.fori_loop(at * block, (at + 1) * block, column_point,
                                         (energy, gradient))
    following = jnp.min(jnp.where(mine & (position > at), position, end))
    return following, energy, gradient

  first = jnp.min(jnp.where(mine, position, end))
  _, energy, gradient = jax.lax.while_loop(
      lambda state: state[0] < end, column_block,
      (first, jnp.zeros((num_rows,), jnp.float32), [jnp.zeros_like(row) for row in rows]))
  energy_ref[row_group, split] = jnp.sum(energy)
  for force, piece in zip(gradient, pieces):
    gradient_ref[split, pl.ds(local_row0, num_rows), piece] = force


def _pieces(size: int, widest: int) -> list[tuple[int, int]]:
  """(start, width) covering size with powers of two <= widest: 416, 128 -> 3 x 128, 1 x 32."""
  widths = [widest] * (size // widest)
  rest = size % widest
  widths += [1 << bit for bit in reversed(range(rest.bit_length())) if rest >> bit & 1]
  return [(sum(widths[:index]), width) for index, width in enumerate(widths)]


def _row_sums(pieces: list[jnp.ndarray]) -> jnp.ndarray:
  """Sum over columns of side-by-side pieces: same-width pieces are added before reducing."""
  by_width = {}
  for piece in pieces:
    by_width[piece.shape] = by_width[piece.shape] + piece if piece.shape in by_width else piece
  return sum(jnp.sum(total, axis=1) for total in by_width.values())


def _check_layout(layout: BlockLayout, config: KernelConfig) -> None:
  if (layout.block != config.block or layout.rows_per_shard % config.screen_rows or
      layout.padded_size % config.screen_cols):
    raise ValueError(f"pallas field: layout {layout} does not fit kernel config {config}; "
                     "build it with pallas_field.kernel_layout.")


def _prepare(points, labels, row_start, layout, config):
  """Static sizes, points padded to the kernels' dimension, int32 labels, row_start as (1,)."""
  _check_layout(layout, config.validate())
  grid = _grid(layout, points.shape[1], config)
  points = jnp.pad(jnp.asarray(points, jnp.float32),
                   ((0, 0), (0, grid.padded_dim - points.shape[1])))
  row_start = jnp.asarray(row_start, jnp.int32).reshape(1)
  return grid, points, jnp.asarray(labels, jnp.int32), row_start


def _run_screen(points, labels, row_start, layout, field, config, grid, interpret):
  """Flags (row blocks of the shard, flag_width) int32 and same counts (rows of the shard,)."""
  kernel = functools.partial(_screen_kernel, config=config, grid=grid,
                             threshold=screen_threshold(field))
  flags, counts = pl.pallas_call(
      kernel, grid=(grid.row_tiles, grid.splits),
      out_shape=(jax.ShapeDtypeStruct((layout.rows_per_shard // config.block, grid.flag_width),
                                      jnp.int32),
                 jax.ShapeDtypeStruct((grid.splits, layout.rows_per_shard), jnp.int32)),
      compiler_params=pallas_triton.CompilerParams(num_warps=config.screen_warps,
                                                   num_stages=config.screen_stages),
      interpret=interpret, name="pfml_field_screen",
  )(row_start, points.astype(jnp.bfloat16), labels)
  if grid.triangle:  # one shard: the flags' square part is the whole map
    square = flags[:, :grid.num_blocks]
    flags = flags.at[:, :grid.num_blocks].set(square | square.T)
  return flags, jnp.sum(counts, axis=0)


def screen(points: jnp.ndarray, labels: jnp.ndarray, row_start: jnp.ndarray,
           layout: BlockLayout, field: FieldParams, *, config: KernelConfig = DEFAULT_CONFIG,
           interpret: bool = False) -> tuple[jnp.ndarray, jnp.ndarray]:
  """The screen kernel alone, with ``block_sparse_field._screen``'s contract (drop-in).

  Args:
    points: (layout.padded_size, D) float32 points; padding rows have label -1.
    labels: (layout.padded_size,) int32 labels.
    row_start: first row of this shard (a traced scalar under shard_map).
    layout: from ``kernel_layout`` with the same config.
    field: the potential's hyperparameters.
    config: the kernels' tiling.
    interpret: run in Pallas' interpreter (no GPU needed).
  Returns:
    activity: (row blocks of the shard, all blocks) bool, True where a block may carry force.
    same_counts: (rows of the shard,) int32 valid same-label points per row, itself included.
  """
  grid, points, labels, row_start = _prepare(points, labels, row_start, layout, config)
  flags, counts = _run_screen(points, labels, row_start, layout, field, config, grid, interpret)
  return flags[:, :grid.num_blocks] != 0, counts


def pallas_energy_and_grad(points: jnp.ndarray, labels: jnp.ndarray, row_start: jnp.ndarray,
                           layout: BlockLayout, field: FieldParams, *,
                           config: KernelConfig = DEFAULT_CONFIG,
                           interpret: bool = False, unpulled_from: int | None = None
                           ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Energy of the ordered pairs (a, b) with a in this shard's rows, and dU/dx_a for them.

  Same contract as ``block_sparse_field.block_sparse_energy_and_grad`` (``unpulled_from``
  included); ``layout`` must come from ``kernel_layout`` with the same ``config``;
  ``interpret`` runs the kernels in Pallas' interpreter (no GPU needed).
  """
  dim = points.shape[1]
  grid, points, labels, row_start = _prepare(points, labels, row_start, layout, config)
  flags, counts = _run_screen(points, labels, row_start, layout, field, config, grid, interpret)
  row_groups = layout.rows_per_shard // config.exact_rows
  kernel = functools.partial(_exact_kernel, config=config, grid=grid, field=field,
                             unpulled_from=unpulled_from)
  energies, gradients = pl.pallas_call(
      kernel, grid=(row_groups, grid.exact_splits),
      out_shape=(jax.ShapeDtypeStruct((row_groups, grid.exact_splits), jnp.float32),
                 jax.ShapeDtypeStruct((grid.exact_splits, layout.rows_per_shard,
                                       grid.padded_dim), jnp.float32)),
      compiler_params=pallas_triton.CompilerParams(num_warps=config.exact_warps,
                                                   num_stages=config.exact_stages),
      interpret=interpret, name="pfml_field_exact",
  )(row_start, points, labels, flags)
  # Every valid different-label pair outside the flagged blocks adds delta_rep^-alpha.
  row_labels = jax.lax.dynamic_slice_in_dim(labels, row_start[0], layout.rows_per_shard)
  far_pairs = jnp.where(row_labels >= 0, jnp.sum(labels >= 0) - counts, 0)
  energy = field.far_repulsion * jnp.sum(far_pairs.astype(jnp.float32)) + jnp.sum(energies)
  return energy, jnp.sum(gradients[:, :, :dim], axis=0)
