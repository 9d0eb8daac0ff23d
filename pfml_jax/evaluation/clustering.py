"""NMI: k-means clusters of the embeddings (k = number of classes) against their classes.

k-means is Lloyd's algorithm in JAX on the L2-normalised float32 embeddings, fully specified so
a run is reproducible: initial centroids are the rows
``np.random.default_rng(seed).choice(N, k, replace=False)``; each step assigns every point to
the centroid of least squared Euclidean distance (ties to the lower cluster index) and moves
each centroid to the mean of its points (an empty cluster keeps its centroid); it stops when
no assignment changes or after ``max_iterations`` steps. NMI is the mutual information of
classes and clusters over the arithmetic mean of their entropies (scikit-learn's default).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_SEED = 0
DEFAULT_MAX_ITERATIONS = 50
_BLOCK_BYTES = 256 * 2**20  # one block of points x centroids scores


def nmi_score(unit_embeddings: np.ndarray, labels: np.ndarray, *, seed: int = DEFAULT_SEED,
              max_iterations: int = DEFAULT_MAX_ITERATIONS) -> float:
  """NMI of k-means (k = number of classes) clusters of (N, E) unit rows against labels."""
  clusters = kmeans(unit_embeddings, len(np.unique(labels)), seed=seed,
                    max_iterations=max_iterations)
  return normalized_mutual_info(labels, clusters)


def kmeans(points: np.ndarray, num_clusters: int, *, seed: int = DEFAULT_SEED,
           max_iterations: int = DEFAULT_MAX_ITERATIONS) -> np.ndarray:
  """(N,) int32 cluster of each of the (N, E) float32 points (rule in the module docstring)."""
  points = np.asarray(points, np.float32)
  if not 1 <= num_clusters <= len(points):
    raise ValueError(f"k-means needs 1 <= num_clusters <= number of points ({len(points)}), "
                     f"got {num_clusters}.")
  initial = points[np.random.default_rng(seed).choice(len(points), num_clusters, replace=False)]
  rows = -(-max(min(_BLOCK_BYTES // (4 * num_clusters), len(points)), 8) // 8) * 8
  padded = -(-len(points) // rows) * rows
  valid = np.arange(padded) < len(points)
  assignments = _lloyd(jnp.asarray(np.pad(points, ((0, padded - len(points)), (0, 0)))),
                       jnp.asarray(valid), jnp.asarray(initial), rows=rows,
                       max_iterations=max_iterations)
  return np.asarray(assignments)[:len(points)]


@functools.partial(jax.jit, static_argnames=("rows", "max_iterations"))
def _lloyd(points: jnp.ndarray, valid: jnp.ndarray, centroids: jnp.ndarray, *, rows: int,
           max_iterations: int) -> jnp.ndarray:
  weights = valid.astype(jnp.float32)

  def assign(centroids):
    # argmin |x - c|^2 = argmax x.c - |c|^2 / 2; a block of rows at a time bounds memory.
    half_norm = 0.5 * jnp.sum(centroids * centroids, axis=1)

    def block(x):
      scores = jnp.dot(x, centroids.T, precision=jax.lax.Precision.HIGHEST) - half_norm
      return jnp.argmax(scores, axis=1).astype(jnp.int32)

    return jax.lax.map(block, points.reshape(-1, rows, points.shape[1])).reshape(-1)

  def step(state):
    iteration, centroids, assignment, _ = state
    sums = jax.ops.segment_sum(points * weights[:, None], assignment, len(centroids))
    counts = jax.ops.segment_sum(weights, assignment, len(centroids))[:, None]
    centroids = jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), centroids)
    new_assignment = assign(centroids)
    return iteration + 1, centroids, new_assignment, jnp.any(valid & (new_assignment != assignment))

  def running(state):
    iteration, _, _, changed = state
    return changed & (iteration < max_iterations)

  state = (jnp.int32(0), centroids, assign(centroids), jnp.bool_(True))
  return jax.lax.while_loop(running, step, state)[2]


def normalized_mutual_info(labels: np.ndarray, clusters: np.ndarray) -> float:
  """2 I(labels; clusters) / (H(labels) + H(clusters)), natural logs; 1.0 if both are constant."""
  _, label_ids = np.unique(labels, return_inverse=True)
  _, cluster_ids = np.unique(clusters, return_inverse=True)
  num_clusters = cluster_ids.max() + 1
  pairs, pair_counts = np.unique(label_ids.astype(np.int64) * num_clusters + cluster_ids,
                                 return_counts=True)
  total = float(len(label_ids))
  p_label = np.bincount(label_ids) / total
  p_cluster = np.bincount(cluster_ids) / total
  p_pair = pair_counts / total
  independent = p_label[pairs // num_clusters] * p_cluster[pairs % num_clusters]
  mutual_info = max(float(np.sum(p_pair * np.log(p_pair / independent))), 0.0)
  entropy_sum = -float(np.sum(p_label * np.log(p_label)) + np.sum(p_cluster * np.log(p_cluster)))
  return 1.0 if entropy_sum == 0.0 else 2.0 * mutual_info / entropy_sum
