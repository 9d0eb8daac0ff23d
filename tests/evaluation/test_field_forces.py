"""field_forces against a float64 double-loop energy, pfml_jax's JAX energy and hand-built cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.evaluation import field_forces
from pfml_jax.losses.dense_field import dense_energy
from pfml_jax.losses.potential_energy import EnergyExecution, potential_energy
from pfml_jax.losses.potentials import FieldParams

ALPHA, DELTA_ATT, DELTA_REP = 3.0, 0.7, 0.9  # wide radii: every component carries force
FIELD = FieldParams(ALPHA, DELTA_ATT, DELTA_REP)


def _loop_energy(points, labels, alpha, delta_att, delta_rep, unpulled_from=None):
  """Paper Eq. 6 over ordered pairs, one pair at a time, float64; same-class pairs of rows both
  at or after ``unpulled_from`` (proxies without self-attraction) are left out."""
  total = 0.0
  for a in range(len(points)):
    for b in range(len(points)):
      if a == b or (unpulled_from is not None and min(a, b) >= unpulled_from
                    and labels[a] == labels[b]):
        continue
      d = np.sqrt(np.sum((points[a] - points[b]) ** 2))
      total += (-max(d, delta_att) ** -alpha if labels[a] == labels[b]
                else min(d, delta_rep) ** -alpha)
  return total


def _random_set(seed, embeddings=9, proxies=6, dim=3):
  """Unit points whose pair distances keep clear of the radii (the potentials' kinks)."""
  rng = np.random.default_rng(seed)
  while True:
    points = rng.normal(size=(embeddings + proxies, dim))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    d = np.sqrt(np.sum((points[:, None] - points[None]) ** 2, -1))[np.triu_indices(len(points), 1)]
    if np.min(np.abs(d[:, None] - [DELTA_ATT, DELTA_REP])) > 1e-3 and d.min() > 0.05:
      labels = rng.integers(0, 3, size=embeddings + proxies)
      return points, labels, np.arange(len(points)) >= embeddings


def _components(points, labels, is_proxy, proxy_self_attraction=True):
  return field_forces.gradient_components(points, labels, int(np.sum(~is_proxy)), FIELD,
                                          proxy_self_attraction)


@pytest.mark.parametrize("proxy_self_attraction", [True, False])
def test_components_sum_to_finite_difference_gradient_of_loop_energy(proxy_self_attraction):
  points, labels, is_proxy = _random_set(0)
  unpulled_from = None if proxy_self_attraction else int(np.sum(~is_proxy))
  components = _components(points, labels, is_proxy, proxy_self_attraction)
  for name in field_forces.COMPONENTS:
    assert np.abs(components[name]).max() > 1e-3, name
  step, numeric = 1e-6, np.zeros_like(points)
  for index in np.ndindex(points.shape):
    up, down = points.copy(), points.copy()
    up[index] += step
    down[index] -= step
    numeric[index] = (_loop_energy(up, labels, *FIELD, unpulled_from) -
                      _loop_energy(down, labels, *FIELD, unpulled_from)) / (2 * step)
  np.testing.assert_allclose(sum(components.values()), numeric, rtol=1e-6, atol=1e-6)


def test_without_proxy_self_attraction_proxies_feel_no_pull_from_proxies():
  points, labels, is_proxy = _random_set(0)
  with_pull = _components(points, labels, is_proxy)["attraction_from_proxies"]
  without = _components(points, labels, is_proxy, False)["attraction_from_proxies"]
  assert np.abs(with_pull[is_proxy]).max() > 1e-3  # the switch has something to remove
  np.testing.assert_array_equal(without[is_proxy], 0.0)
  np.testing.assert_array_equal(without[~is_proxy], with_pull[~is_proxy])  # embeddings: as before


@pytest.mark.parametrize("proxy_self_attraction", [True, False])
def test_components_sum_to_jax_gradient_of_pfml_energy(proxy_self_attraction):
  points, labels, is_proxy = _random_set(1, embeddings=12, proxies=8, dim=6)
  total = sum(_components(points, labels, is_proxy, proxy_self_attraction).values())
  scale = np.abs(total).max()
  unpulled_from = None if proxy_self_attraction else int(np.sum(~is_proxy))
  raw = jax.grad(dense_energy)(jnp.asarray(points, jnp.float32), jnp.asarray(labels), FIELD,
                               unpulled_from)
  np.testing.assert_allclose(raw, total, rtol=1e-4, atol=1e-5 * scale)
  emb = jnp.asarray(points[~is_proxy], jnp.float32)
  prox = jnp.asarray(points[is_proxy], jnp.float32)

  def energy(emb, prox, normalize_proxies):
    return potential_energy(emb, jnp.asarray(labels[~is_proxy]), prox,
                            jnp.asarray(labels[is_proxy]), alpha=ALPHA, delta_att=DELTA_ATT,
                            delta_rep=DELTA_REP, normalize_proxies=normalize_proxies,
                            proxy_self_attraction=proxy_self_attraction,
                            execution=EnergyExecution("dense"))

  # The loss normalises unit inputs: its gradient is the tangent part of the forces.
  tangent = total - np.sum(total * points, 1, keepdims=True) * points
  g_emb, g_prox = jax.grad(energy, argnums=(0, 1))(emb, prox, True)
  np.testing.assert_allclose(g_emb, tangent[~is_proxy], rtol=1e-4, atol=1e-5 * scale)
  np.testing.assert_allclose(g_prox, tangent[is_proxy], rtol=1e-4, atol=1e-5 * scale)
  _, g_raw_prox = jax.grad(energy, argnums=(0, 1))(emb, prox, False)
  np.testing.assert_allclose(g_raw_prox, total[is_proxy], rtol=1e-4, atol=1e-5 * scale)


def _pair(angle):
  return np.array([[1.0, 0.0], [np.cos(angle), np.sin(angle)]])


@pytest.mark.parametrize("same_class", [True, False])
def test_no_force_on_the_flat_side_of_each_radius(same_class):
  delta = 0.5
  labels = np.array([0, 0]) if same_class else np.array([0, 1])
  flat, active = (0.3, 0.7) if same_class else (0.7, 0.3)  # chord ~ angle here
  for angle, expect_force in ((flat, False), (active, True)):
    points = _pair(angle)
    gradient = sum(field_forces.gradient_components(points, labels, 2,
                                                    FieldParams(ALPHA, delta, delta)).values())
    d = np.linalg.norm(points[0] - points[1])
    pull = (1 if same_class else -1) * 2 * ALPHA * d ** (-ALPHA - 1)  # dU/dd, both orders
    expected = pull * (points[0] - points[1]) / d
    np.testing.assert_allclose(gradient[0], expected if expect_force else 0.0, atol=1e-12)


def test_shares_and_total_norms():
  points, labels, is_proxy = _random_set(2)
  report = field_forces.gradient_shares(points[~is_proxy], labels[~is_proxy], points[is_proxy],
                                        labels[is_proxy], FIELD)
  components = _components(points, labels, is_proxy)
  view = report["on_embeddings"]["euclidean"]
  for name in field_forces.COMPONENTS:
    expected = np.sum(np.linalg.norm(components[name][~is_proxy], axis=1))
    assert view[name]["norm_sum"] == pytest.approx(expected)
  assert sum(view[n]["share"] for n in field_forces.COMPONENTS) == pytest.approx(1.0)
  total = np.sum(np.linalg.norm(sum(components.values())[~is_proxy], axis=1))
  assert view["total_gradient_norm_sum"] == pytest.approx(total)
  assert total <= view["sum_of_component_norms"]
  tangent = report["on_proxies"]["tangent"]["total_gradient_norm_sum"]
  assert tangent < report["on_proxies"]["euclidean"]["total_gradient_norm_sum"]


def test_distance_fractions_on_a_hand_built_circle():
  # Class 0 at angles 0, 0.2, 1.0; class 1 at 0.3 and pi (unit circle, chord 2 sin(gap / 2)).
  angles, labels = np.array([0.0, 0.2, 1.0, 0.3, np.pi]), np.array([0, 0, 0, 1, 1])
  points = 3.0 * np.stack([np.cos(angles), np.sin(angles)], 1)  # normalised inside
  proxies = np.stack([np.cos([0.1, 3.0, 0.0]), np.sin([0.1, 3.0, 0.0])], 1)
  chord = lambda gap: 2 * np.sin(abs(gap) / 2)
  summary = field_forces.pair_distance_summary(points, labels, 0.5, 0.5, proxies,
                                               np.array([0, 1, -1]))
  ee = summary["embedding_embedding"]
  same = [chord(0.2), chord(1.0), chord(0.8), chord(np.pi - 0.3)]
  assert (ee["same_class_pairs"], ee["other_class_pairs"]) == (4, 6)
  assert ee["same_class_inside_delta_att"] == pytest.approx(1 / 4)  # (0, 0.2) only
  assert ee["other_class_inside_delta_rep"] == pytest.approx(2 / 6)  # 0.3 with 0 and 0.2
  assert ee["same_class_distance"]["q50"] == pytest.approx(np.median(same))
  ep = summary["embedding_proxy"]  # proxy 0 at 0.1, proxy 1 at 3.0; padding dropped
  assert (ep["same_class_pairs"], ep["other_class_pairs"]) == (5, 5)
  assert ep["same_class_inside_delta_att"] == pytest.approx(3 / 5)  # 0, 0.2 near 0.1; pi near 3
  assert ep["other_class_inside_delta_rep"] == pytest.approx(1 / 5)  # 0.3 near 0.1
  assert summary["proxy_proxy"]["other_class_pairs"] == 1
