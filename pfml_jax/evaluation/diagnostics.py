"""Diagnostics of the paper's claims about the embedding geometry, on host, in float64.

- ``proxy_data_w2``: how close each class's learned proxies end to the data they stand for,
  the 2-Wasserstein distance between the class's M proxies and its n training embeddings (the
  paper's Advantage #4: decaying fields leave proxies nearer their data).
- ``spread_and_margin``: how spread out each class is and how far the nearest other class
  stays, on test embeddings (the paper's claim: a decaying pull keeps intra-class variation
  yet separates classes).
- ``nearest_proxy``: the fraction of training embeddings whose most similar proxy (cosine)
  belongs to their own class: a proxy loss whose proxies sit far from their data (W2 above
  sqrt(2)) is either geometry (proxies still nearest their class) or a proxy/label mismatch
  (this fraction near chance, 1 / classes).
- ``proxy_spread``: per class, the mean pairwise distance of its M proxies against that of its
  training embeddings: whether the M proxies cover the class or collapse onto one point.
- ``training_diagnostics``: all of them, as a JSON-ready dict for the run's report.

Geometry: every point is L2-normalised first and distances are Euclidean (chordal) on the unit
sphere. Our choice, because every proxy loss here compares directions only: PFML normalises
its proxies inside the energy, Proxy Anchor, ProxyNCA and Normalized Softmax use cosine
similarity, and retrieval ranks by cosine; a proxy's norm carries no meaning for the loss.
"""

from typing import Any

import numpy as np
from scipy import optimize

from pfml_jax.numerics import unit_rows

ROW_CHUNK = 1024  # rows of the pairwise distance matrix held at once (CUB test: 5,924 points)
PAIR_BLOCK_BYTES = 2**28  # explicit float64 differences held at once by _mean_pairwise_distance


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """(len(a), len(b)) squared Euclidean distances from explicit differences, float64."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)


def wasserstein2(a: np.ndarray, b: np.ndarray) -> float:
  """Exact 2-Wasserstein distance between uniform distributions on the rows of ``a`` and ``b``.

  The discrete optimal transport problem min <T, C> over the transport polytope
  {T >= 0, T 1 = 1/len(a), T^T 1 = 1/len(b)}, with C the squared Euclidean costs, solved as a
  linear program (HiGHS' dual simplex, exact up to its 1e-9 feasibility tolerance: a vertex of
  the polytope, not an entropic approximation). Our choice over linear_sum_assignment, which is
  exact only for equal sizes; here M proxies meet n != M embeddings. Sizes stay small
  (M <= 20, n ~ 100: 2,000 variables).
  """
  cost = squared_distances(a, b)
  m, n = cost.shape
  rows = np.kron(np.eye(m), np.ones((1, n)))  # sum_j T_ij = 1/m
  cols = np.kron(np.ones((1, m)), np.eye(n))  # sum_i T_ij = 1/n
  result = optimize.linprog(
      cost.ravel(), A_eq=np.concatenate([rows, cols]),
      b_eq=np.concatenate([np.full(m, 1.0 / m), np.full(n, 1.0 / n)]), bounds=(0, None),
      method="highs-ds")
  if result.status != 0:
    raise RuntimeError(f"wasserstein2: the transport problem failed: {result.message}")
  return float(np.sqrt(max(result.fun, 0.0)))


def proxy_data_w2(proxies, proxy_labels, embeddings, labels) -> dict[str, Any]:
  """Per-class W2 between the class's proxies and its embeddings, both L2-normalised.

  Args:
    proxies: (P, D) proxies; ``proxy_labels`` (P,) their classes (< 0: padding, ignored).
    embeddings: (N, D) training embeddings; ``labels`` (N,) their classes (< 0: ignored).

  Returns:
    ``mean`` and ``median`` over classes, ``per_class`` {class: W2}, ``classes`` (the count):
    classes with both proxies and embeddings. Chordal distances: 0 (proxies on the data) to 2.
  """
  proxies, proxy_labels, embeddings, labels = _proxies_and_embeddings(
      proxies, proxy_labels, embeddings, labels)
  classes = sorted(set(proxy_labels.tolist()) & set(labels.tolist()))
  if not classes:
    raise ValueError("proxy_data_w2: no class has both proxies and embeddings; pass the "
                     "training embeddings with the labels the proxies were trained on.")
  per_class = {c: wasserstein2(proxies[proxy_labels == c], embeddings[labels == c])
               for c in classes}
  values = np.array(list(per_class.values()))
  return {"mean": float(values.mean()), "median": float(np.median(values)),
          "classes": len(classes), "per_class": {int(c): v for c, v in per_class.items()}}


def _proxies_and_embeddings(proxies, proxy_labels, embeddings, labels):
  """Unit proxies and embeddings without their padding (< 0) rows, with their labels."""
  proxy_labels, labels = np.asarray(proxy_labels), np.asarray(labels)
  proxies = unit_rows(np.asarray(proxies)[proxy_labels >= 0], "proxies")
  embeddings = unit_rows(np.asarray(embeddings)[labels >= 0], "embeddings")
  return proxies, proxy_labels[proxy_labels >= 0], embeddings, labels[labels >= 0]


def nearest_proxy(proxies, proxy_labels, embeddings, labels) -> dict[str, Any]:
  """How often an embedding's most similar proxy (cosine) is one of its own class's.

  Args:
    proxies: (P, D) proxies; ``proxy_labels`` (P,) their classes (< 0: padding, ignored).
    embeddings: (N, D) training embeddings; ``labels`` (N,) their classes (< 0: ignored).

  Returns:
    ``own_class``: the fraction of the embeddings (of classes that have proxies) whose nearest
    proxy is their class's; ``chance``: 1 / the number of proxy classes, what a proxy set
    unrelated to the labels would give; ``own_cosine`` / ``other_cosine``: the mean over
    those embeddings of the largest cosine to an own-class proxy and to another class's.
  """
  proxies, proxy_labels, embeddings, labels = _proxies_and_embeddings(
      proxies, proxy_labels, embeddings, labels)
  proxy_classes = np.unique(proxy_labels)
  kept = np.isin(labels, proxy_classes)
  if not kept.any():
    raise ValueError("nearest_proxy: no embedding belongs to a class with proxies; pass the "
                     "training embeddings with the labels the proxies were trained on.")
  embeddings, labels = embeddings[kept], labels[kept]
  own_cosines, other_cosines = [], []
  for start in range(0, len(embeddings), ROW_CHUNK):
    rows = slice(start, start + ROW_CHUNK)
    cosine = embeddings[rows] @ proxies.T
    own = labels[rows, None] == proxy_labels[None, :]
    own_cosines.append(np.where(own, cosine, -np.inf).max(axis=1))
    other_cosines.append(np.where(own, -np.inf, cosine).max(axis=1))
  own_cosine, other_cosine = np.concatenate(own_cosines), np.concatenate(other_cosines)
  return {"own_class": float(np.mean(own_cosine > other_cosine)),
          "chance": 1.0 / len(proxy_classes), "own_cosine": float(np.mean(own_cosine)),
          "other_cosine": float(np.mean(other_cosine))}


def _mean_pairwise_distance(x: np.ndarray) -> float:
  """Mean distance over the distinct pairs of rows of ``x`` (at least two rows), a block of
  rows at a time: a class of any size stays within ~PAIR_BLOCK_BYTES."""
  n = len(x)
  rows = max(1, PAIR_BLOCK_BYTES // (8 * n * x.shape[1]))
  total = 0.0
  for start in range(0, n, rows):
    distances = np.sqrt(squared_distances(x[start:start + rows], x))
    upper = np.arange(start, start + len(distances))[:, None] < np.arange(n)[None, :]
    total += distances[upper].sum()
  return total / (n * (n - 1) / 2)


def proxy_spread(proxies, proxy_labels, embeddings, labels) -> dict[str, Any] | None:
  """Per class, how spread its M proxies are against how spread its training embeddings are.

  The spread of a set is its mean pairwise distance (on the unit sphere, chordal), which does
  not depend on the set's size (unlike the distance to the set's mean), so M proxies and n
  embeddings compare directly. ``ratio`` = proxy spread / data spread per class: near 0, the
  class's proxies have collapsed onto one point; near 1, they spread like the data.

  Returns:
    ``None`` with one proxy per class (no spread to measure); else ``proxies``, ``data`` and
    ``ratio`` (means over classes), ``ratio_median``, ``proxy_diameter`` (the mean over
    classes of the largest distance between two of its proxies) and ``classes``: classes with
    at least two proxies and two embeddings.
  """
  proxies, proxy_labels, embeddings, labels = _proxies_and_embeddings(
      proxies, proxy_labels, embeddings, labels)
  classes = [c for c in np.unique(proxy_labels)
             if np.sum(proxy_labels == c) >= 2 and np.sum(labels == c) >= 2]
  if not classes:
    return None
  proxy_spreads = np.array([_mean_pairwise_distance(proxies[proxy_labels == c])
                            for c in classes])
  data_spreads = np.array([_mean_pairwise_distance(embeddings[labels == c]) for c in classes])
  diameters = [np.sqrt(squared_distances(proxies[proxy_labels == c],
                                         proxies[proxy_labels == c]).max()) for c in classes]
  ratios = proxy_spreads / data_spreads
  return {"proxies": float(proxy_spreads.mean()), "data": float(data_spreads.mean()),
          "ratio": float(ratios.mean()), "ratio_median": float(np.median(ratios)),
          "proxy_diameter": float(np.mean(diameters)), "classes": len(classes)}


def spread_and_margin(embeddings, labels) -> dict[str, float]:
  """Intra-class spread and nearest-other-class margin of L2-normalised embeddings.

  - ``spread``: per class, the mean distance of its points to the class centroid (the plain
    mean of its unit vectors, the point that minimises the squared distances), then averaged
    over classes, so every class weighs the same whatever its size.
  - ``margin``: per point, the distance to its nearest other-class point minus its mean
    distance to the other points of its class, averaged over points. It compares a class's
    typical extent with its closest intruder, which is the paper's claim (spread kept, classes
    still apart); ``margin_positive`` is the fraction of points whose margin is > 0.
  Points alone in their class have no spread or margin and are skipped (``singletons``).
  """
  labels = np.asarray(labels)
  x = unit_rows(np.asarray(embeddings)[labels >= 0], "embeddings")
  labels = labels[labels >= 0]
  classes, counts = np.unique(labels, return_counts=True)
  if len(classes) < 2:
    raise ValueError("spread_and_margin: needs at least two classes.")
  spreads = []
  for c in classes[counts >= 2]:
    members = x[labels == c]
    spreads.append(np.mean(np.linalg.norm(members - members.mean(axis=0), axis=1)))
  margins = []
  for start in range(0, len(x), ROW_CHUNK):
    rows = slice(start, start + ROW_CHUNK)
    # Unit rows: d^2 = 2 - 2 cos; in float64 its rounding (~1e-16) is far below any margin.
    distances = np.sqrt(np.maximum(2.0 - 2.0 * (x[rows] @ x.T), 0.0))
    same = labels[rows, None] == labels[None, :]
    nearest_other = np.where(same, np.inf, distances).min(axis=1)
    same[np.arange(distances.shape[0]), np.arange(start, start + distances.shape[0])] = False
    kept = same.sum(axis=1) > 0
    mean_same = np.sum(np.where(same, distances, 0.0), axis=1) / np.maximum(same.sum(axis=1), 1)
    margins.append((nearest_other - mean_same)[kept])
  margins = np.concatenate(margins)
  return {"spread": float(np.mean(spreads)), "margin": float(np.mean(margins)),
          "margin_positive": float(np.mean(margins > 0)),
          "singletons": int(np.sum(counts == 1))}


def training_diagnostics(proxies, proxy_labels, train_embeddings, train_labels,
                         test_embeddings, test_labels) -> dict[str, Any]:
  """The end-of-training report: proxy-data W2, nearest-proxy fraction and proxy spread on the
  training classes (``None`` for losses without proxies: pass ``proxies=None``) and
  spread/margin on the training and test splits."""
  w2 = nearest = spread = None
  if proxies is not None and np.asarray(proxies).size:
    train = (proxies, proxy_labels, train_embeddings, train_labels)
    w2, nearest, spread = proxy_data_w2(*train), nearest_proxy(*train), proxy_spread(*train)
  return {"proxy_data_w2": w2, "nearest_proxy": nearest, "proxy_spread": spread,
          "train": spread_and_margin(train_embeddings, train_labels),
          "test": spread_and_margin(test_embeddings, test_labels)}
