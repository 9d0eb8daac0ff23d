"""Independent float64 brute force of the retrieval metrics, by their textbook definitions.

Per query: cosine similarity to every gallery item (its own row removed in leave-one-out),
a full ordering by similarity descending then gallery index ascending, then each metric read
off the ordered label list. No ranks, no blocks, no shortcuts.
"""

import numpy as np


def unit(x):
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def metrics(queries, query_labels, gallery, gallery_labels, ks, leave_one_out):
  queries, gallery = unit(queries), unit(gallery)
  per_query = {f"recall@{k}": [] for k in ks}
  per_query.update({"map@r": [], "r_precision": []})
  excluded = 0
  for q in range(len(queries)):
    others = np.array([g for g in range(len(gallery)) if not (leave_one_out and g == q)])
    similarity = gallery[others] @ queries[q]
    order = others[np.lexsort((others, -similarity))]
    relevant = gallery_labels[order] == query_labels[q]
    r = int(relevant.sum())
    if r == 0:
      excluded += 1
      continue
    for k in ks:
      per_query[f"recall@{k}"].append(float(relevant[:k].any()))
    precision_at = np.cumsum(relevant[:r]) / np.arange(1, r + 1)
    per_query["map@r"].append(float(np.sum(precision_at * relevant[:r]) / r))
    per_query["r_precision"].append(float(relevant[:r].sum() / r))
  result = {name: float(np.mean(values)) for name, values in per_query.items()}
  result["num_queries"] = len(queries) - excluded
  result["num_excluded_queries"] = excluded
  return result


def normalized_mutual_info(labels, clusters):
  """Arithmetic-mean NMI from a contingency table built with plain Python loops."""
  n = len(labels)
  joint, label_count, cluster_count = {}, {}, {}
  for a, b in zip(labels.tolist(), clusters.tolist()):
    joint[a, b] = joint.get((a, b), 0) + 1
    label_count[a] = label_count.get(a, 0) + 1
    cluster_count[b] = cluster_count.get(b, 0) + 1
  mutual_info = sum(c / n * np.log(c * n / (label_count[a] * cluster_count[b]))
                    for (a, b), c in joint.items())
  entropy = lambda counts: -sum(c / n * np.log(c / n) for c in counts.values())
  denominator = entropy(label_count) + entropy(cluster_count)
  return 1.0 if denominator == 0 else 2 * mutual_info / denominator


def lloyd(points, initial_centroids, max_iterations):
  """float64 k-means: nearest centroid (ties to the lower index), mean update, empty keeps."""
  points = np.asarray(points, np.float64)
  centroids = np.asarray(initial_centroids, np.float64).copy()
  distance = lambda c: ((points[:, None, :] - c[None, :, :]) ** 2).sum(-1)
  assignment = np.argmin(distance(centroids), axis=1)
  for _ in range(max_iterations):
    for c in range(len(centroids)):
      members = points[assignment == c]
      if len(members):
        centroids[c] = members.mean(axis=0)
    new_assignment = np.argmin(distance(centroids), axis=1)
    if np.array_equal(new_assignment, assignment):
      break
    assignment = new_assignment
  return assignment
