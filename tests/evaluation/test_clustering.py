"""NMI and k-means against independent float64 NumPy code."""

import numpy as np
import pytest

from pfml_jax.evaluation import kmeans, normalized_mutual_info, retrieval_metrics
from pfml_jax.evaluation.clustering import DEFAULT_MAX_ITERATIONS
from tests.evaluation import retrieval_reference


@pytest.mark.parametrize("num_labels, num_clusters", [(2, 2), (5, 9), (20, 7), (1, 4)])
def test_nmi_matches_reference(num_labels, num_clusters):
  rng = np.random.default_rng(num_labels * 10 + num_clusters)
  labels = rng.integers(0, num_labels, 300) * 7 + 3  # arbitrary, non-contiguous ids
  clusters = np.where(rng.random(300) < 0.6, labels % num_clusters,
                      rng.integers(0, num_clusters, 300))
  assert normalized_mutual_info(labels, clusters) == pytest.approx(
      retrieval_reference.normalized_mutual_info(labels, clusters), rel=1e-12, abs=1e-15)


def test_nmi_limits():
  labels = np.repeat(np.arange(6), 5)
  assert normalized_mutual_info(labels, labels + 100) == pytest.approx(1.0, rel=1e-12)
  assert normalized_mutual_info(np.zeros(8, int), np.zeros(8, int)) == 1.0
  assert normalized_mutual_info(labels, np.zeros(30, int)) == 0.0


def clustered_points(rng, num_classes, per_class, dim, spread):
  centres = rng.normal(size=(num_classes, dim))
  labels = np.repeat(np.arange(num_classes), per_class)
  points = centres[labels] + spread * rng.normal(size=(len(labels), dim))
  points /= np.linalg.norm(points, axis=1, keepdims=True)
  return points.astype(np.float32), labels


@pytest.mark.parametrize("seed", [0, 3])
def test_kmeans_matches_float64_lloyd_from_the_documented_start(seed):
  rng = np.random.default_rng(7)
  points, _ = clustered_points(rng, 6, 20, 8, spread=0.5)
  initial = points[np.random.default_rng(seed).choice(len(points), 6, replace=False)]
  want = retrieval_reference.lloyd(points, initial, DEFAULT_MAX_ITERATIONS)
  np.testing.assert_array_equal(kmeans(points, 6, seed=seed), want)


def test_retrieval_nmi_is_kmeans_nmi_of_the_classes():
  rng = np.random.default_rng(8)
  points, labels = clustered_points(rng, 5, 12, 16, spread=0.3)
  got = retrieval_metrics(points * 3.0, labels, (1,), nmi=True)["nmi"]
  initial = points[np.random.default_rng(0).choice(len(points), 5, replace=False)]
  clusters = retrieval_reference.lloyd(points, initial, DEFAULT_MAX_ITERATIONS)
  assert got == pytest.approx(retrieval_reference.normalized_mutual_info(labels, clusters),
                              rel=1e-12)
  assert "nmi" not in retrieval_metrics(points, labels, (1,))


def test_kmeans_rejects_impossible_cluster_counts():
  with pytest.raises(ValueError, match="num_clusters"):
    kmeans(np.ones((3, 2), np.float32), 4)
