"""Exact top-K neighbours of queries in a gallery, by cosine similarity, on either backend.

The order is the evaluation's (``ranking_problem.py``): similarity descending, then gallery
index ascending. ``"jax"`` takes ``lax.top_k`` (lower index first on ties) of each block of a
query shard's similarities (matmul at ``Precision.HIGHEST``), queries split over every device;
``"faiss"`` searches a flat inner-product index and settles ties at the cut-off as evaluation
does. ``"auto"`` is evaluation's rule (``retrieval.choose_backend``) for one selection pass per
query.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pfml_jax.evaluation import faiss_ranks, jax_ranks
from pfml_jax.evaluation.retrieval import choose_backend
from pfml_jax.numerics import unit_rows

BACKENDS = ("jax", "faiss")


def neighbour_backend(k: int, backend: str = "auto") -> str:
  """The backend ``nearest_neighbours`` runs for ``backend`` ("auto", "jax" or "faiss")."""
  if backend == "auto":
    return choose_backend(k, passes_per_query=1)
  if backend not in BACKENDS:
    raise ValueError(f"Unknown search backend {backend!r}; choose 'auto' or one of {BACKENDS}.")
  return backend


def nearest_neighbours(queries, gallery, k: int, backend: str = "auto",
                       block_bytes: int = jax_ranks.DEFAULT_BLOCK_BYTES
                       ) -> tuple[np.ndarray, np.ndarray]:
  """(Q, k) float32 cosine similarities and (Q, k) int64 gallery rows of each query's top k.

  Args:
    queries: (Q, E) embeddings (normalised here).
    gallery: (G, E) embeddings (normalised here), G >= k.
    k: neighbours per query.
    backend: "auto", "jax" or "faiss".
    block_bytes: jax backend: one query-block x gallery similarity block per device.
  """
  queries = unit_rows(queries, "queries", zero_rows="keep", dtype=np.float32)
  gallery = unit_rows(gallery, "gallery", zero_rows="keep", dtype=np.float32)
  if queries.shape[1] != gallery.shape[1]:
    raise ValueError(f"Query embeddings have dimension {queries.shape[1]} but the gallery's "
                     f"{gallery.shape[1]}; embed both with the same model.")
  if not 1 <= k <= len(gallery):
    raise ValueError(f"k={k}: must be between 1 and the gallery size ({len(gallery)}).")
  if neighbour_backend(k, backend) == "faiss":
    return _faiss_neighbours(queries, gallery, k)
  return _jax_neighbours(queries, gallery, k, block_bytes)


def nearest_other_rows(embeddings, queries, k: int,
                       backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
  """``nearest_neighbours`` of the rows ``queries`` of ``embeddings`` among its OTHER rows.

  Each query's own row is excluded by index (a duplicate of it is still found), so the order
  stays similarity descending, then row index. Returns (Q, k) similarities and (Q, k) rows.
  """
  queries = np.asarray(queries)
  similarity, rows = nearest_neighbours(np.asarray(embeddings)[queries], embeddings, k + 1,
                                        backend)
  keep = rows != queries[:, None]
  keep[:, -1] &= ~keep.all(axis=1)  # the query itself fell beyond the top k + 1: drop the last
  return similarity[keep].reshape(-1, k), rows[keep].reshape(-1, k)


def _faiss_neighbours(queries: np.ndarray, gallery: np.ndarray,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
  import faiss  # pylint: disable=g-import-not-at-top
  index = faiss.IndexFlatIP(gallery.shape[1])
  index.add(np.ascontiguousarray(gallery))
  return faiss_ranks.ordered_neighbours(index, queries, None, k)


def _jax_neighbours(queries: np.ndarray, gallery: np.ndarray, k: int,
                    block_bytes: int) -> tuple[np.ndarray, np.ndarray]:
  mesh = jax_ranks.default_mesh()
  rows = jax_ranks.block_rows(len(queries), len(gallery), mesh.size, block_bytes)
  padded = -(-len(queries) // (mesh.size * rows)) * mesh.size * rows
  sharded = jax.NamedSharding(mesh, jax.P(tuple(mesh.axis_names)))
  similarity, items = _sharded_top_k(mesh, rows, k)(
      jax_ranks.host_to_global(np.pad(queries, ((0, padded - len(queries)), (0, 0))), sharded),
      jax_ranks.host_to_global(gallery, jax.NamedSharding(mesh, jax.P())))
  return (np.asarray(similarity)[:len(queries)],
          np.asarray(items)[:len(queries)].astype(np.int64))


@functools.lru_cache(maxsize=16)
def _sharded_top_k(mesh: jax.sharding.Mesh, rows: int, k: int):
  """The jitted, sharded top-k for one mesh, block size and k (compiled per shape)."""
  axes = tuple(mesh.axis_names)

  def shard(queries, gallery):
    def block(block_queries):
      similarity = jnp.dot(block_queries, gallery.T, precision=jax.lax.Precision.HIGHEST,
                           preferred_element_type=jnp.float32)
      return jax.lax.top_k(similarity, k)

    found, items = jax.lax.map(block, queries.reshape(-1, rows, queries.shape[1]))
    return found.reshape(-1, k), items.reshape(-1, k)

  spec = jax.P(axes)
  top_k = jax.shard_map(shard, mesh=mesh, in_specs=(spec, jax.P()), out_specs=(spec, spec))
  return jax.jit(top_k, out_shardings=jax.NamedSharding(mesh, jax.P()))
