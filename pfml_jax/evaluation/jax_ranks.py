"""The JAX backend: exact ranks of relevant items, blockwise on the accelerator, sharded.

With s the similarities of query q, the rank of its relevant item p among the gallery items
other than q is

    rank(p) = 1 + #{j != self(q) : s_j > s_p  or  (s_j == s_p and j < p)}

(similarity descending, ties by gallery index). Counting this for all R_max relevant items of
each query needs no top-k: per relevant item, one pass of comparisons over the B x G similarity
block of its query block, reduced to a count. Recall@1000 costs what Recall@1 costs, and ties
follow the rule by construction. Work is Q * G * (2E flops + ~4C comparisons) for C = largest
class; memory is one B x G float32 block per device (B from ``block_bytes``) plus at most one
B x G count temporary, never Q x G.

Queries are split over all devices of the mesh along one axis, the gallery is replicated, and
each device walks its queries in blocks with ``lax.map``. The similarity matmul runs at
``Precision.HIGHEST`` (true float32; TF32/bf16 would reorder near-ties).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pfml_jax.evaluation.ranking_problem import RankingProblem

DEFAULT_BLOCK_BYTES = 256 * 2**20  # one B x G float32 similarity block per device
_NO_ITEM = np.iinfo(np.int32).max


def default_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh of every device (all processes), the axis queries are split along."""
  return jax.make_mesh((jax.device_count(),), ("queries",),
                       axis_types=(jax.sharding.AxisType.Explicit,))


def relevant_ranks(problem: RankingProblem, *, mesh: jax.sharding.Mesh | None = None,
                   block_bytes: int = DEFAULT_BLOCK_BYTES) -> np.ndarray:
  """(Q, max R) ascending ranks of each query's relevant items, capped at depth + 1.

  Args:
    problem: the prepared evaluation (every process of a multi-host run passes the same one).
    mesh: devices to shard queries over, along all its axes; default every device.
    block_bytes: size of one query-block x gallery float32 similarity block per device.
  """
  mesh = default_mesh() if mesh is None else mesh
  num_queries, num_gallery = len(problem.queries), len(problem.gallery)
  rows = block_rows(num_queries, num_gallery, mesh.size, block_bytes)
  padded = -(-num_queries // (mesh.size * rows)) * mesh.size * rows
  self_index = (np.full(num_queries, -1, np.int32) if problem.self_index is None
                else problem.self_index)

  def pad(x, value):
    return np.pad(x, [(0, padded - num_queries)] + [(0, 0)] * (x.ndim - 1),
                  constant_values=value)

  sharded = jax.NamedSharding(mesh, jax.P(tuple(mesh.axis_names)))
  replicated = jax.NamedSharding(mesh, jax.P())
  ranks = _sharded_ranks(mesh, rows)(
      host_to_global(pad(problem.queries, 0.0), sharded),
      host_to_global(pad(problem.relevant_items(), -1), sharded),
      host_to_global(pad(self_index, -1), sharded), host_to_global(problem.gallery, replicated))
  return problem.finish_ranks(np.asarray(ranks)[:num_queries])


def block_rows(num_queries: int, num_gallery: int, num_shards: int, block_bytes: int) -> int:
  """Queries per block: fill ``block_bytes`` of similarities, no more than a shard holds."""
  per_shard = -(-num_queries // num_shards)
  rows = min(max(block_bytes // (4 * num_gallery), 8), per_shard)
  return -(-rows // 8) * 8


def host_to_global(x: np.ndarray, sharding: jax.NamedSharding) -> jax.Array:
  """A global array from a host array that every process holds in full."""
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


@functools.lru_cache(maxsize=16)
def _sharded_ranks(mesh: jax.sharding.Mesh, rows: int):
  """The jitted, sharded rank computation for one mesh and block size (compiled per shape)."""
  axes = tuple(mesh.axis_names)

  def shard(queries, relevant, self_index, gallery):
    def block(args):
      return _block_ranks(*args, gallery)

    blocks = (queries.reshape(-1, rows, queries.shape[1]),
              relevant.reshape(-1, rows, relevant.shape[1]), self_index.reshape(-1, rows))
    return jax.lax.map(block, blocks).reshape(relevant.shape)

  spec = jax.P(axes)
  ranks = jax.shard_map(shard, mesh=mesh, in_specs=(spec, spec, spec, jax.P()), out_specs=spec)
  return jax.jit(ranks, out_shardings=jax.NamedSharding(mesh, jax.P()))


def _block_ranks(queries: jnp.ndarray, relevant: jnp.ndarray, self_index: jnp.ndarray,
                 gallery: jnp.ndarray) -> jnp.ndarray:
  """(B, C) ranks of relevant items (-1 entries give _NO_ITEM) for one block of queries."""
  similarity = jnp.dot(queries, gallery.T, precision=jax.lax.Precision.HIGHEST,
                       preferred_element_type=jnp.float32)
  target = jnp.take_along_axis(similarity, jnp.maximum(relevant, 0), axis=1)
  index = jax.lax.broadcasted_iota(jnp.int32, (1, similarity.shape[1]), 1)

  def count_ahead(slot):
    # One relevant item per query at a time: B x G temporaries at most, on every backend.
    slot_target, slot_item = slot[0][:, None], slot[1][:, None]
    ahead = (similarity > slot_target) | ((similarity == slot_target) & (index < slot_item))
    return jnp.sum(ahead, axis=1, dtype=jnp.int32)

  count = jax.lax.map(count_ahead, (target.T, relevant.T)).T
  # The query's own row was counted like any other item; take it back out by index.
  own = jnp.take_along_axis(similarity, jnp.maximum(self_index, 0)[:, None], axis=1)
  own_ahead = (self_index[:, None] >= 0) & (
      (own > target) | ((own == target) & (self_index[:, None] < relevant)))
  return jnp.where(relevant >= 0, 1 + count - own_ahead.astype(jnp.int32), _NO_ITEM)
