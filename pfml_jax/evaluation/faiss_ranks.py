"""The faiss backend: exact inner-product kNN on the host, only as deep as the metrics need.

Queries are searched in chunks against a flat (exact) inner-product index for the top
depth + 1 (+1 for the query itself in leave-one-out) items. The query's own row is dropped by
index, the rest ordered by similarity descending then gallery index ascending. faiss breaks
ties at the cut-off its own way, so a query is accepted only when the item after the cut-off is
strictly less similar than the last item kept; then the kept set is the tie-broken top-depth
regardless of faiss's choice. Queries with a tie across the cut-off (duplicate embeddings) are
searched again deeper until that holds or the whole gallery is ranked.
"""

import numpy as np

from pfml_jax.evaluation.ranking_problem import RankingProblem

DEFAULT_CHUNK_ROWS = 4096


def relevant_ranks(problem: RankingProblem, *,
                   chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
  """(Q, max R) ascending ranks of each query's relevant items, capped at depth + 1.

  Args:
    problem: the prepared evaluation.
    chunk_rows: queries per faiss search call (bounds the host memory of its answers).
  """
  try:
    import faiss  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError("The 'faiss' evaluation backend needs faiss-cpu (pinned in "
                      "requirements.txt); install it or use backend='jax'.") from error
  index = faiss.IndexFlatIP(problem.gallery.shape[1])
  index.add(np.ascontiguousarray(problem.gallery))
  ranks = []
  for start in range(0, len(problem.queries), chunk_rows):
    rows = slice(start, start + chunk_rows)
    self_index = None if problem.self_index is None else problem.self_index[rows]
    _, neighbours = ordered_neighbours(index, problem.queries[rows], self_index,
                                       problem.depth)
    relevant = problem.gallery_labels[neighbours] == problem.query_labels[rows, None]
    ranks.append(np.where(relevant, np.arange(1, problem.depth + 1), problem.depth + 1))
  return problem.finish_ranks(np.concatenate(ranks))


def ordered_neighbours(index, queries: np.ndarray, self_index: np.ndarray | None,
                       depth: int) -> tuple[np.ndarray, np.ndarray]:
  """(n, depth) similarities and gallery rows of each query's first ``depth`` items.

  Args:
    index: a faiss inner-product index holding the gallery.
    queries: (n, E) float32 unit rows.
    self_index: (n,) the gallery row that is each query itself (skipped), or None.
    depth: how many items to return per query (at most the items each query ranks).
  """
  k = min(depth + 1 + (self_index is not None), index.ntotal)
  found = np.empty((len(queries), depth), np.float32)
  neighbours = np.empty((len(queries), depth), np.int64)
  pending = np.arange(len(queries))
  while len(pending):
    similarity, items = index.search(np.ascontiguousarray(queries[pending]), k)
    own = (np.zeros_like(items, bool) if self_index is None
           else items == self_index[pending, None])
    # Own row last, then similarity descending, then gallery index ascending.
    order = np.lexsort((items, -similarity, own), axis=1)
    similarity = np.take_along_axis(similarity, order, axis=1)
    items = np.take_along_axis(items, order, axis=1)
    if k == index.ntotal:  # the whole gallery is ranked: nothing lies beyond the cut-off
      settled = np.ones(len(pending), bool)
    else:
      settled = similarity[:, depth] < similarity[:, depth - 1]
    neighbours[pending[settled]] = items[settled, :depth]
    found[pending[settled]] = similarity[settled, :depth]
    pending = pending[~settled]
    k = min(2 * k, index.ntotal)
  return found, neighbours
