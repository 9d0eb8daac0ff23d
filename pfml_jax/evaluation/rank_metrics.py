"""Recall@K, MAP@R and R-Precision from the ranks of each query's relevant items.

For a query with R relevant gallery items at 1-based ranks r_1 < r_2 < ... < r_R (the query
itself never ranked):

    Recall@K      = 1 if r_1 <= K else 0                    (hit rate; = Precision@1 at K = 1)
    R-Precision   = #{j : r_j <= R} / R
    MAP@R         = (1 / R) * sum_{j : r_j <= R} j / r_j    (Musgrave et al., 2020)

(j / r_j is the precision at the rank of the j-th relevant item). Each metric is the mean over
queries with R >= 1; queries with R = 0 are excluded and counted. See docs/metrics.md.
"""

from typing import Sequence

import numpy as np


def metrics_from_ranks(ranks: np.ndarray, num_relevant: np.ndarray,
                       ks: Sequence[int]) -> dict[str, float]:
  """The metrics and query counts; float64 means reported as Python floats.

  Args:
    ranks: (Q, W) ascending 1-based ranks of each query's relevant items; columns past R, and
      ranks deeper than both max(ks) and R, may hold any larger value.
    num_relevant: (Q,) R per query.
    ks: the K of each Recall@K.
  Returns:
    ``recall@K`` per K, ``map@r``, ``r_precision``, ``num_queries`` (queries with R >= 1) and
    ``num_excluded_queries`` (R = 0).
  """
  evaluated = num_relevant > 0
  if not evaluated.any():
    raise ValueError("No query has another item of its class in the gallery, so every "
                     "retrieval metric is undefined; evaluate a set with classes of >= 2 items.")
  ranks = ranks[evaluated].astype(np.float64)
  relevant = num_relevant[evaluated].astype(np.float64)[:, None]
  position = np.arange(1, ranks.shape[1] + 1, dtype=np.float64)
  within_r = ranks <= relevant
  metrics = {f"recall@{k}": float(np.mean(ranks[:, 0] <= k)) for k in ks}
  metrics["map@r"] = float(np.mean(np.sum(np.where(within_r, position / ranks, 0.0), axis=1)
                                   / relevant[:, 0]))
  metrics["r_precision"] = float(np.mean(np.sum(within_r, axis=1) / relevant[:, 0]))
  metrics["num_queries"] = int(evaluated.sum())
  metrics["num_excluded_queries"] = int((~evaluated).sum())
  return metrics
