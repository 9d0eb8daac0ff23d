"""One retrieval evaluation, prepared once on the host and handed to every ranking backend.

A backend answers one question: for each query, at which ranks does the ordering of the
gallery place the query's relevant items (the gallery items of its class, the query itself
excluded)? The ordering is

    similarity descending, then gallery index ascending        (the tie-break)

over L2-normalised float32 embeddings, with the query's own gallery row removed by index in the
leave-one-out form. Every metric (Recall@K, MAP@R, R-Precision) follows from those ranks, so
two backends that return the same ranks report the same metrics.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class RankingProblem:
  """Queries against a gallery, with the depth the requested metrics need.

  Attributes:
    queries: (Q, E) float32 unit rows.
    query_labels: (Q,) int32 class of each query.
    gallery: (G, E) float32 unit rows.
    gallery_labels: (G,) int32 class of each gallery item.
    self_index: (Q,) int32 gallery row that is the query itself (leave-one-out; skipped when
      ranking), or None when queries and gallery are separate sets.
    num_relevant: (Q,) int32 R = gallery items of the query's class, the query excluded.
    depth: ranks beyond this change no requested metric (max(K), max(R)), capped at the number
      of gallery items each query ranks.
  """

  queries: np.ndarray
  query_labels: np.ndarray
  gallery: np.ndarray
  gallery_labels: np.ndarray
  self_index: np.ndarray | None
  num_relevant: np.ndarray
  depth: int

  @property
  def width(self) -> int:
    """The most relevant items any query has (max R): the columns of a backend's answer."""
    return int(self.num_relevant.max())

  @property
  def ranked_per_query(self) -> int:
    """Gallery items each query ranks (the gallery, less the query itself if it is in it)."""
    return len(self.gallery) - (self.self_index is not None)

  def relevant_items(self) -> np.ndarray:
    """(Q, C) int32 gallery rows of each query's class in ascending order, -1 elsewhere.

    C is the largest gallery class among the queries' classes; the query's own row (leave-one-out)
    is -1, so each row holds exactly R valid entries.
    """
    order = np.argsort(self.gallery_labels, kind="stable")
    classes, starts, sizes = np.unique(self.gallery_labels[order], return_index=True,
                                       return_counts=True)
    slot = np.minimum(np.searchsorted(classes, self.query_labels), len(classes) - 1)
    present = classes[slot] == self.query_labels
    columns = np.arange(sizes[slot[present]].max() if present.any() else 1)
    valid = present[:, None] & (columns < sizes[slot][:, None])
    rows = order[np.minimum(starts[slot][:, None] + columns, len(order) - 1)]
    table = np.where(valid, rows, -1).astype(np.int32)
    if self.self_index is not None:
      table[table == self.self_index[:, None]] = -1
    return table

  def finish_ranks(self, ranks: np.ndarray) -> np.ndarray:
    """A backend's answer in canonical form: (Q, width) int32, ascending, capped at depth + 1.

    Args:
      ranks: (Q, C) 1-based ranks of relevant items in any column order; any value > depth
        (padding included) means "deeper than any metric looks".
    """
    capped = np.minimum(ranks, self.depth + 1).astype(np.int32)
    return np.sort(capped, axis=1)[:, :self.width]


def make_problem(queries: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray,
                 gallery_labels: np.ndarray, self_index: np.ndarray | None,
                 ks: tuple[int, ...]) -> RankingProblem:
  """The problem for validated unit-row embeddings and labels (see ``retrieval.py``)."""
  classes, sizes = np.unique(gallery_labels, return_counts=True)
  slot = np.minimum(np.searchsorted(classes, query_labels), len(classes) - 1)
  num_relevant = np.where(classes[slot] == query_labels, sizes[slot], 0)
  if self_index is not None:
    num_relevant = num_relevant - 1
  ranked = len(gallery) - (self_index is not None)
  depth = min(max(max(ks), int(num_relevant.max())), ranked)
  return RankingProblem(queries, query_labels, gallery, gallery_labels, self_index,
                        num_relevant.astype(np.int32), depth)
