"""Evaluation: retrieval metrics (Recall@K, MAP@R, R-Precision, NMI), embedding extraction, the
geometry diagnostics (proxy-data W2, spread, margin), and a model's embedder, evaluator and its
loading from a checkpoint (``trained_model.py``)."""

from pfml_jax.evaluation.clustering import kmeans, nmi_score, normalized_mutual_info
from pfml_jax.evaluation.diagnostics import training_diagnostics
from pfml_jax.evaluation.extraction import extract_embeddings, load_embeddings, save_embeddings
from pfml_jax.evaluation.ranking_problem import RankingProblem
from pfml_jax.evaluation.retrieval import BACKENDS, retrieval_metrics, retrieval_metrics_qg

__all__ = ["BACKENDS", "RankingProblem", "extract_embeddings", "kmeans", "load_embeddings",
           "nmi_score", "normalized_mutual_info", "retrieval_metrics", "retrieval_metrics_qg",
           "save_embeddings", "training_diagnostics"]
