"""Proxy-data W2, nearest proxy, proxy spread and spread/margin against independent float64
code: brute force over permutations, the 1-D quantile formula, per-point and per-pair loops,
and invariances that can fail."""

import itertools
import json

import numpy as np
import pytest

from pfml_jax.evaluation import diagnostics


def brute_force_w2(a: np.ndarray, b: np.ndarray) -> float:
  """Equal sizes, uniform weights: an optimal plan is a permutation (Birkhoff)."""
  best = min(np.mean([np.sum((a[i] - b[j]) ** 2) for i, j in enumerate(perm)])
             for perm in itertools.permutations(range(len(b))))
  return float(np.sqrt(best))


def quantile_w2_1d(a: np.ndarray, b: np.ndarray) -> float:
  """W2 in 1-D: sqrt of the integral over t in (0, 1) of (F_a^-1(t) - F_b^-1(t))^2."""
  a, b = np.sort(a), np.sort(b)
  cuts = np.unique(np.concatenate([np.arange(len(a) + 1) / len(a),
                                   np.arange(len(b) + 1) / len(b)]))
  total = 0.0
  for lo, hi in zip(cuts[:-1], cuts[1:]):
    mid = (lo + hi) / 2
    total += (hi - lo) * (a[int(mid * len(a))] - b[int(mid * len(b))]) ** 2
  return float(np.sqrt(total))


def unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_w2_equals_brute_force_over_permutations():
  rng = np.random.default_rng(0)
  for _ in range(5):
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    assert diagnostics.wasserstein2(a, b) == pytest.approx(brute_force_w2(a, b), abs=1e-7)


def test_w2_of_unequal_sizes_in_1d_equals_the_quantile_formula():
  rng = np.random.default_rng(1)
  for m, n in ((3, 5), (2, 7), (4, 6), (1, 9)):
    a, b = rng.normal(size=m), rng.normal(size=n) + 0.5
    expected = quantile_w2_1d(a, b)
    assert diagnostics.wasserstein2(a[:, None], b[:, None]) == pytest.approx(expected, abs=1e-7)


def test_w2_splits_mass_exactly():
  """Two points against four, two copies each: distance 0 only if mass is split 1/4 + 1/4."""
  a = np.array([[1.0, 0.0], [0.0, 1.0]])
  b = np.concatenate([a, a])
  assert diagnostics.wasserstein2(a, b) == pytest.approx(0.0, abs=1e-7)
  assert diagnostics.wasserstein2(a[:1], b) == pytest.approx(1.0, abs=1e-7)  # sqrt(2/4)*sqrt2


def class_data(rng, classes=4, per_class_proxies=3, per_class=5, dim=4):
  proxies = rng.normal(size=(classes * per_class_proxies, dim))
  proxy_labels = np.repeat(np.arange(classes), per_class_proxies)
  embeddings = rng.normal(size=(classes * per_class, dim))
  labels = np.repeat(np.arange(classes), per_class)
  return proxies, proxy_labels, embeddings, labels


def test_proxy_data_w2_per_class_on_normalised_points():
  rng = np.random.default_rng(2)
  proxies, proxy_labels, embeddings, labels = class_data(rng, per_class_proxies=5)
  result = diagnostics.proxy_data_w2(proxies, proxy_labels, embeddings, labels)
  expected = {c: brute_force_w2(unit(proxies[proxy_labels == c]), unit(embeddings[labels == c]))
              for c in range(4)}
  assert result["classes"] == 4
  for c in range(4):
    assert result["per_class"][c] == pytest.approx(expected[c], abs=1e-7)
  values = list(expected.values())
  assert result["mean"] == pytest.approx(np.mean(values), abs=1e-7)
  assert result["median"] == pytest.approx(np.median(values), abs=1e-7)


def test_proxy_data_w2_invariances():
  """Row scales, a common rotation, and a shuffle with padding rows change nothing; moving one
  class's proxies changes that class only."""
  rng = np.random.default_rng(3)
  proxies, proxy_labels, embeddings, labels = class_data(rng)
  base = diagnostics.proxy_data_w2(proxies, proxy_labels, embeddings, labels)["per_class"]
  rotation, _ = np.linalg.qr(rng.normal(size=(4, 4)))
  scaled = diagnostics.proxy_data_w2(
      proxies * rng.uniform(0.1, 10, (len(proxies), 1)) @ rotation, proxy_labels,
      embeddings * rng.uniform(0.1, 10, (len(embeddings), 1)) @ rotation, labels)["per_class"]
  order = rng.permutation(len(embeddings))
  padded = diagnostics.proxy_data_w2(
      np.concatenate([proxies, rng.normal(size=(2, 4))]), np.concatenate([proxy_labels, [-1, -1]]),
      embeddings[order], labels[order])["per_class"]
  moved_proxies = proxies.copy()
  moved_proxies[proxy_labels == 1] = -moved_proxies[proxy_labels == 1]
  moved = diagnostics.proxy_data_w2(moved_proxies, proxy_labels, embeddings, labels)["per_class"]
  for c in range(4):
    assert scaled[c] == pytest.approx(base[c], abs=1e-7)
    assert padded[c] == pytest.approx(base[c], abs=1e-7)
    assert (moved[c] == pytest.approx(base[c], abs=1e-7)) == (c != 1)


def reference_spread_and_margin(x, labels):
  x = unit(np.asarray(x, np.float64))
  spreads = []
  for c in np.unique(labels):
    members = x[labels == c]
    if len(members) > 1:
      centroid = members.sum(axis=0) / len(members)
      spreads.append(np.mean([np.sqrt(np.sum((p - centroid) ** 2)) for p in members]))
  margins = []
  for i in range(len(x)):
    same = [np.sqrt(np.sum((x[i] - x[j]) ** 2)) for j in range(len(x))
            if j != i and labels[j] == labels[i]]
    other = [np.sqrt(np.sum((x[i] - x[j]) ** 2)) for j in range(len(x)) if labels[j] != labels[i]]
    if same:
      margins.append(min(other) - np.mean(same))
  return np.mean(spreads), np.mean(margins), np.mean(np.array(margins) > 0)


def test_spread_and_margin_against_per_point_loops(monkeypatch):
  rng = np.random.default_rng(4)
  labels = np.array([0] * 6 + [1] * 3 + [2] * 9 + [3])  # unequal sizes and one singleton
  centres = unit(rng.normal(size=(4, 8)))
  x = centres[labels] + 0.4 * rng.normal(size=(len(labels), 8))
  monkeypatch.setattr(diagnostics, "ROW_CHUNK", 5)  # several row chunks, one ragged
  result = diagnostics.spread_and_margin(x, labels)
  spread, margin, positive = reference_spread_and_margin(x, labels)
  assert result["spread"] == pytest.approx(spread, abs=1e-9)
  assert result["margin"] == pytest.approx(margin, abs=1e-9)
  assert result["margin_positive"] == pytest.approx(positive)
  assert result["singletons"] == 1
  assert 0 < positive < 1  # the data exercises both signs


def test_tighter_classes_have_smaller_spread_and_larger_margin():
  rng = np.random.default_rng(5)
  labels = np.repeat(np.arange(5), 8)
  centres = unit(rng.normal(size=(5, 16)))
  noise = rng.normal(size=(40, 16))
  loose = diagnostics.spread_and_margin(centres[labels] + 0.5 * noise, labels)
  tight = diagnostics.spread_and_margin(centres[labels] + 0.1 * noise, labels)
  assert tight["spread"] < loose["spread"] and tight["margin"] > loose["margin"]


def reference_nearest_proxy(proxies, proxy_labels, embeddings, labels):
  """Per embedding, a loop over the proxies for the most similar one of each kind."""
  hits, own_cosines, other_cosines = [], [], []
  for x, label in zip(embeddings, labels):
    if label < 0 or label not in proxy_labels:
      continue
    x = x / np.linalg.norm(x)
    own, other = -np.inf, -np.inf
    for p, proxy_label in zip(proxies, proxy_labels):
      if proxy_label < 0:
        continue
      cosine = float(np.dot(x, p) / np.linalg.norm(p))
      if proxy_label == label:
        own = max(own, cosine)
      else:
        other = max(other, cosine)
    hits.append(own > other)
    own_cosines.append(own)
    other_cosines.append(other)
  return np.mean(hits), np.mean(own_cosines), np.mean(other_cosines)


def test_nearest_proxy_against_per_embedding_loops(monkeypatch):
  rng = np.random.default_rng(7)
  proxies, proxy_labels, embeddings, labels = class_data(rng, classes=5, per_class_proxies=3,
                                                         per_class=8, dim=6)
  centres = unit(rng.normal(size=(5, 6)))
  embeddings = centres[labels] + 0.9 * embeddings  # partly near their class's direction
  proxies = centres[proxy_labels] + 0.9 * proxies
  labels = labels.copy()
  labels[:3] = -1  # padding rows
  proxy_labels = np.concatenate([proxy_labels, [-1]])  # a padding proxy
  proxies = np.concatenate([proxies, [centres[0] * 5]])
  monkeypatch.setattr(diagnostics, "ROW_CHUNK", 7)  # several row chunks, one ragged
  result = diagnostics.nearest_proxy(proxies, proxy_labels, embeddings, labels)
  fraction, own, other = reference_nearest_proxy(proxies, proxy_labels, embeddings, labels)
  assert result["own_class"] == pytest.approx(fraction, abs=1e-12)
  assert result["own_cosine"] == pytest.approx(own, abs=1e-12)
  assert result["other_cosine"] == pytest.approx(other, abs=1e-12)
  assert result["chance"] == pytest.approx(1 / 5)
  assert 0 < fraction < 1  # the data exercises both outcomes


def test_nearest_proxy_sees_a_label_mismatch():
  """Proxies on their classes: every embedding is nearest its own; proxies relabelled by a
  shift of one class (a proxy/label defect): none is."""
  rng = np.random.default_rng(8)
  labels = np.repeat(np.arange(6), 5)
  centres = unit(rng.normal(size=(6, 12)))
  embeddings = centres[labels] + 0.05 * rng.normal(size=(30, 12))
  proxy_labels = np.repeat(np.arange(6), 2)
  proxies = centres[proxy_labels] + 0.05 * rng.normal(size=(12, 12))
  right = diagnostics.nearest_proxy(proxies, proxy_labels, embeddings, labels)
  shifted = diagnostics.nearest_proxy(proxies, (proxy_labels + 1) % 6, embeddings, labels)
  assert right["own_class"] == 1.0 and shifted["own_class"] == 0.0


def reference_mean_pairwise_distance(x):
  x = unit(np.asarray(x, np.float64))
  distances = [np.sqrt(np.sum((x[i] - x[j]) ** 2)) for i in range(len(x))
               for j in range(i + 1, len(x))]
  return np.mean(distances), np.max(distances)


def test_proxy_spread_against_pair_loops():
  rng = np.random.default_rng(9)
  proxies, proxy_labels, embeddings, labels = class_data(rng, classes=4, per_class_proxies=4,
                                                         per_class=6, dim=5)
  proxy_labels = proxy_labels.copy()
  proxy_labels[-3:] = -1  # class 3 keeps a single proxy: no spread, skipped
  result = diagnostics.proxy_spread(proxies, proxy_labels, embeddings, labels)
  proxy_spreads, data_spreads, diameters = [], [], []
  for c in range(3):
    spread, diameter = reference_mean_pairwise_distance(proxies[proxy_labels == c])
    proxy_spreads.append(spread)
    diameters.append(diameter)
    data_spreads.append(reference_mean_pairwise_distance(embeddings[labels == c])[0])
  ratios = np.array(proxy_spreads) / np.array(data_spreads)
  assert result["classes"] == 3
  assert result["proxies"] == pytest.approx(np.mean(proxy_spreads), abs=1e-12)
  assert result["data"] == pytest.approx(np.mean(data_spreads), abs=1e-12)
  assert result["ratio"] == pytest.approx(np.mean(ratios), abs=1e-12)
  assert result["ratio_median"] == pytest.approx(np.median(ratios), abs=1e-12)
  assert result["proxy_diameter"] == pytest.approx(np.mean(diameters), abs=1e-12)


def test_proxy_spread_tells_collapsed_proxies_from_spread_ones():
  rng = np.random.default_rng(10)
  labels = np.repeat(np.arange(3), 20)
  centres = unit(rng.normal(size=(3, 16)))
  embeddings = centres[labels] + 0.3 * rng.normal(size=(60, 16))
  proxy_labels = np.repeat(np.arange(3), 10)
  collapsed = centres[proxy_labels] + 1e-3 * rng.normal(size=(30, 16))
  spread = centres[proxy_labels] + 0.3 * rng.normal(size=(30, 16))
  low = diagnostics.proxy_spread(collapsed, proxy_labels, embeddings, labels)
  high = diagnostics.proxy_spread(spread, proxy_labels, embeddings, labels)
  assert low["ratio"] < 0.01 and 0.8 < high["ratio"] < 1.25
  assert diagnostics.proxy_spread(centres, np.arange(3), embeddings, labels) is None  # M = 1


def test_training_diagnostics_is_json_ready_and_skips_w2_without_proxies():
  rng = np.random.default_rng(6)
  proxies, proxy_labels, embeddings, labels = class_data(rng)
  report = diagnostics.training_diagnostics(proxies, proxy_labels, embeddings, labels,
                                            embeddings[:12], labels[:12])
  restored = json.loads(json.dumps(report))  # raises on NumPy scalars or keys
  assert restored["test"] == report["test"] and restored["proxy_data_w2"]["per_class"]["0"] > 0
  assert set(report) == {"proxy_data_w2", "nearest_proxy", "proxy_spread", "train", "test"}
  assert report["proxy_data_w2"]["classes"] and report["proxy_spread"]["classes"] == 4
  assert 0 <= restored["nearest_proxy"]["own_class"] <= 1
  without = diagnostics.training_diagnostics(None, None, embeddings, labels, embeddings, labels)
  assert without["proxy_data_w2"] is without["nearest_proxy"] is without["proxy_spread"] is None


def test_bad_input_is_named():
  with pytest.raises(ValueError, match="no class has both proxies and embeddings"):
    diagnostics.proxy_data_w2(np.ones((2, 3)), [0, 0], np.ones((2, 3)), [1, 1])
  with pytest.raises(ValueError, match="no embedding belongs to a class with proxies"):
    diagnostics.nearest_proxy(np.ones((2, 3)), [0, 0], np.ones((2, 3)), [1, 1])
  with pytest.raises(ValueError, match="finite and nonzero"):
    diagnostics.spread_and_margin(np.zeros((4, 3)), [0, 0, 1, 1])
