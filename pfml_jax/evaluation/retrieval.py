"""Retrieval metrics of embeddings: Recall@K, MAP@R, R-Precision, and NMI on request.

    from pfml_jax.evaluation import retrieval_metrics, retrieval_metrics_qg
    metrics = retrieval_metrics(embeddings, labels, ks=(1, 10, 100, 1000))
    metrics = retrieval_metrics_qg(query_emb, query_labels, gallery_emb, gallery_labels)

Embeddings are L2-normalised in float32 (faiss's precision; an all-zero row stays zero and
has similarity 0 to everything) and compared by cosine similarity. In
``retrieval_metrics`` every item queries all OTHER items (its own row removed by index, so
duplicates and ties are ranked like any other item); in ``retrieval_metrics_qg`` queries and
gallery are separate sets and nothing is removed. Ties are broken by gallery index. Definitions
are in ``rank_metrics.py`` and docs/metrics.md.

Backends, all returning identical metrics for the same embeddings (they return the same ranks):
``"jax"`` (blockwise on the accelerator, sharded over every device), ``"faiss"`` (faiss-cpu
on the host), ``"auto"`` (see ``auto_backend``), or any callable RankingProblem -> ranks.
"""

import importlib.util
from typing import Callable, Sequence

import jax
import numpy as np

from pfml_jax.evaluation import clustering, faiss_ranks, jax_ranks
from pfml_jax.evaluation.rank_metrics import metrics_from_ranks
from pfml_jax.evaluation.ranking_problem import RankingProblem, make_problem
from pfml_jax.numerics import unit_rows

RankFn = Callable[[RankingProblem], np.ndarray]
BACKENDS: dict[str, RankFn] = {
    "jax": jax_ranks.relevant_ranks,
    "faiss": faiss_ranks.relevant_ranks,
}
# On CPU both backends pay for the same float32 matmul; on top of it the jax backend pays ~3%
# of it per relevant item of the largest class (C), faiss ~1 / 300 of it per neighbour of depth.
# So on CPU auto takes jax only when depth >= AUTO_CPU_DEPTH_PER_ITEM * C (SOP: 1000 vs 11 ->
# jax; CUB/Cars: depth ~ C -> faiss). Measured on 2 CPU cores, see docs/metrics.md.
AUTO_CPU_DEPTH_PER_ITEM = 10


def retrieval_metrics(embeddings, labels, ks: Sequence[int] = (1, 2, 4, 8), *,
                      backend: str | RankFn = "auto", nmi: bool = False) -> dict[str, float]:
  """Leave-one-out retrieval metrics: every item queries all other items.

  Args:
    embeddings: (N, E) array (any float dtype, NumPy or JAX); L2-normalised here in float32.
    labels: (N,) non-negative integer class of each item.
    ks: the K of each ``recall@K``.
    backend: "auto", "jax", "faiss" or a callable (see the module docstring).
    nmi: also report ``nmi`` (k-means with k = number of classes; costs N x classes x E per
      k-means step, so it is off unless asked).
  Returns:
    ``recall@K`` per K, ``map@r``, ``r_precision``, optionally ``nmi``, and the counts
    ``num_queries`` and ``num_excluded_queries`` (items that are alone in their class).
  """
  points = unit_rows(embeddings, "embeddings", zero_rows="keep", dtype=np.float32)
  labels = class_labels(labels, len(points), "labels")
  ks = recall_ks(ks)
  problem = make_problem(points, labels, points, labels, np.arange(len(points), dtype=np.int32),
                         ks)
  metrics = _metrics(problem, ks, backend)
  if nmi:
    metrics["nmi"] = clustering.nmi_score(points, labels)
  return metrics


def retrieval_metrics_qg(query_embeddings, query_labels, gallery_embeddings, gallery_labels,
                         ks: Sequence[int] = (1, 2, 4, 8), *,
                         backend: str | RankFn = "auto") -> dict[str, float]:
  """Query/gallery retrieval metrics: each query ranks the whole (separate) gallery.

  Nothing is removed from the gallery: an item present in both sets finds itself. Queries whose
  class has no gallery item are excluded and counted. Arguments and keys as in
  ``retrieval_metrics`` (NMI describes one set: use ``clustering.nmi_score`` on it).
  """
  queries = unit_rows(query_embeddings, "query_embeddings", zero_rows="keep", dtype=np.float32)
  gallery = unit_rows(gallery_embeddings, "gallery_embeddings", zero_rows="keep",
                      dtype=np.float32)
  if queries.shape[1] != gallery.shape[1]:
    raise ValueError(f"Query embeddings have dimension {queries.shape[1]} but gallery "
                     f"embeddings {gallery.shape[1]}; embed both with the same model.")
  ks = recall_ks(ks)
  problem = make_problem(queries, class_labels(query_labels, len(queries), "query_labels"),
                         gallery, class_labels(gallery_labels, len(gallery), "gallery_labels"),
                         None, ks)
  return _metrics(problem, ks, backend)


def auto_backend(problem: RankingProblem) -> str:
  """"jax" on GPU/TPU (or without faiss); on CPU the faster one for this depth and class size."""
  return choose_backend(problem.depth, problem.width)


def choose_backend(depth: int, passes_per_query: int) -> str:
  """The "auto" rule for a search ``depth`` deep costing ``passes_per_query`` gallery passes.

  The jax backend pays one comparison pass over the gallery per relevant item (evaluation:
  ``passes_per_query`` = the largest class) or per top-K selection (search: 1).
  """
  if (jax.default_backend() != "cpu" or importlib.util.find_spec("faiss") is None
      or depth >= AUTO_CPU_DEPTH_PER_ITEM * passes_per_query):
    return "jax"
  return "faiss"


def _metrics(problem: RankingProblem, ks: tuple[int, ...],
             backend: str | RankFn) -> dict[str, float]:
  if problem.ranked_per_query < 1:
    raise ValueError("The gallery has no item to rank besides the query itself; evaluate at "
                     "least two items.")
  if callable(backend):
    rank_fn = backend
  else:
    name = auto_backend(problem) if backend == "auto" else backend
    if name not in BACKENDS:
      raise ValueError(f"Unknown evaluation backend {backend!r}; choose 'auto' or one of "
                       f"{sorted(BACKENDS)}.")
    rank_fn = BACKENDS[name]
  return metrics_from_ranks(rank_fn(problem), problem.num_relevant, ks)


def class_labels(labels, num_items: int, name: str) -> np.ndarray:
  """(N,) int32 labels, checked: integer, non-negative, one per embedding row."""
  labels = np.asarray(labels)
  if labels.shape != (num_items,):
    raise ValueError(f"{name} must have shape ({num_items},), one per embedding row; got "
                     f"{labels.shape}.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{name} must be integers, got dtype {labels.dtype}.")
  if num_items and labels.min() < 0:
    raise ValueError(f"{name} has negative entries; a label < 0 marks a padding row, so drop "
                     f"those rows first (extract_embeddings does).")
  return labels.astype(np.int32)


def recall_ks(ks: Sequence[int]) -> tuple[int, ...]:
  """The distinct K values, in the order given; each must be a positive integer."""
  ks = tuple(dict.fromkeys(int(k) for k in ks))
  if not ks or min(ks) < 1:
    raise ValueError(f"ks must be one or more positive integers, got {ks}.")
  return ks
