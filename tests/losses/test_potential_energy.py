"""PFML's energy against independent float64 code, physics checks, padding, sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.losses import EnergyExecution, potential_energy
from tests.losses import field_reference
from tests.losses.field_cases import assert_matches_reference, clustered_points

METHODS = ["dense", "block_sparse"]


def energy_and_grads(embeddings, labels, proxies, proxy_labels, method="auto", **field):
  """U and its gradients on ``method``'s path; ``field``: the energy's constants and options."""
  execution = EnergyExecution(method)
  fn = jax.jit(jax.value_and_grad(
      lambda e, p: potential_energy(e, labels, p, proxy_labels, execution=execution, **field),
      argnums=(0, 1)))
  energy, (grad_emb, grad_prox) = fn(embeddings, proxies)
  return float(energy), np.asarray(grad_emb), np.asarray(grad_prox)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("alpha", [1.0, 3.0, 6.0])
@pytest.mark.parametrize("sizes", [(12, 4, 2, 3), (48, 10, 3, 16), (100, 30, 5, 32)])
def test_matches_float64_reference(method, alpha, sizes):
  rng = np.random.default_rng(int(alpha) * 100 + sizes[0])
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, *sizes)
  kwargs = dict(alpha=alpha, delta_att=0.25, delta_rep=0.15)
  got = energy_and_grads(embeddings, labels, proxies, proxy_labels, method=method, **kwargs)
  want = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels, **kwargs)
  assert_matches_reference(got, want)


@pytest.mark.parametrize("method", METHODS)
def test_padding_rows_contribute_nothing(method):
  rng = np.random.default_rng(1)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 40, 8, 4, 8)
  padded_emb = np.concatenate([embeddings, rng.normal(size=(9, 8)).astype(np.float32)])
  padded_lab = np.concatenate([labels, -np.ones(9, np.int32)])
  padded_prox = np.concatenate([proxies, np.zeros((5, 8), np.float32)])
  padded_prox_lab = np.concatenate([proxy_labels, -np.ones(5, np.int32)])
  energy, grad_emb, grad_prox = energy_and_grads(padded_emb, padded_lab, padded_prox,
                                                 padded_prox_lab, method=method)
  want = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels, 3.0, 0.2, 0.2)
  assert_matches_reference((energy, grad_emb[:40], grad_prox[:32]), want)
  assert np.all(grad_emb[40:] == 0) and np.all(grad_prox[32:] == 0)


@pytest.mark.parametrize("self_attraction", [True, False])
def test_reference_gradient_matches_finite_differences(self_attraction):
  """The float64 oracle's analytic gradient is itself checked by central differences."""
  rng = np.random.default_rng(2)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 6, 2, 2, 3, spread=0.3)
  args = (3.0, 0.3, 0.25, True, self_attraction)
  embeddings, proxies = embeddings.astype(np.float64), proxies.astype(np.float64)
  _, grad_emb, grad_prox = field_reference.energy_and_grad(embeddings, labels, proxies,
                                                           proxy_labels, *args)
  step = 1e-6
  for array, grad in ((embeddings, grad_emb), (proxies, grad_prox)):
    numeric = np.zeros_like(array)
    for index in np.ndindex(array.shape):
      saved = array[index]
      array[index] = saved + step
      up = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels, *args)[0]
      array[index] = saved - step
      down = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels, *args)[0]
      array[index] = saved
      numeric[index] = (up - down) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5 * np.abs(numeric).max())


@pytest.mark.parametrize("method", METHODS)
def test_jax_gradient_matches_finite_differences(method):
  rng = np.random.default_rng(3)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 5, 2, 2, 3, spread=0.3)
  kwargs = dict(alpha=3.0, delta_att=0.3, delta_rep=0.25)
  _, grad_emb, _ = energy_and_grads(embeddings, labels, proxies, proxy_labels, method=method,
                                    **kwargs)
  step = 1e-6
  base = embeddings.astype(np.float64)
  for index in np.ndindex(base.shape):
    shifted = [base.copy(), base.copy()]
    shifted[0][index] += step
    shifted[1][index] -= step
    up, down = (field_reference.energy_and_grad(s, labels, proxies, proxy_labels, **kwargs)[0]
                for s in shifted)
    assert grad_emb[index] == pytest.approx((up - down) / (2 * step), rel=1e-4,
                                            abs=1e-4 * float(np.abs(grad_emb).max()))


def two_points(distance):
  """Two unit vectors at Euclidean distance ``distance`` in the plane."""
  angle = 2 * np.arcsin(distance / 2)
  return np.array([[1.0, 0.0], [np.cos(angle), np.sin(angle)]], np.float32)


@pytest.mark.parametrize("method", METHODS)
def test_no_force_inside_attraction_radius(method):
  points = two_points(0.1)
  _, grad, _ = energy_and_grads(points, np.array([0, 0]), np.zeros((0, 2), np.float32),
                                np.zeros((0,), np.int32), delta_att=0.2, method=method)
  assert np.all(grad == 0)


@pytest.mark.parametrize("method", METHODS)
def test_no_force_beyond_repulsion_radius(method):
  points = two_points(0.5)
  energy, grad, _ = energy_and_grads(points, np.array([0, 1]), np.zeros((0, 2), np.float32),
                                     np.zeros((0,), np.int32), delta_rep=0.2, method=method)
  assert np.all(grad == 0)
  assert energy == pytest.approx(2 * 0.2**-3, rel=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_attraction_decays_and_repulsion_pushes_apart(method):
  no_proxies = (np.zeros((0, 2), np.float32), np.zeros((0,), np.int32))
  pulls = []
  for distance in (0.3, 0.5, 0.8, 1.2, 1.6):
    points = two_points(distance)
    _, grad, _ = energy_and_grads(points, np.array([0, 0]), *no_proxies, method=method)
    # Gradient descent moves point 0 along -grad: towards point 1 for attraction.
    step = -grad[0]
    assert np.dot(step, points[1] - points[0]) > 0
    pulls.append(np.linalg.norm(grad[0]))
  assert all(a > b for a, b in zip(pulls, pulls[1:]))
  points = two_points(0.1)
  _, grad, _ = energy_and_grads(points, np.array([0, 1]), *no_proxies, method=method)
  assert np.dot(-grad[0], points[1] - points[0]) < 0


@pytest.mark.parametrize("method", METHODS)
def test_coincident_points_are_finite(method):
  rng = np.random.default_rng(4)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 20, 4, 2, 8)
  embeddings[1] = embeddings[0]
  labels[1] = (labels[0] + 1) % 4   # a coincident different-label pair: d clamped to 1e-4
  embeddings[3] = embeddings[2]
  labels[3] = labels[2]
  got = energy_and_grads(embeddings, labels, proxies, proxy_labels, method=method)
  assert np.isfinite(got[0]) and np.all(np.isfinite(got[1])) and np.all(np.isfinite(got[2]))
  want = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels, 3.0, 0.2, 0.2)
  assert_matches_reference(got, want)


@pytest.mark.parametrize("method", METHODS)
def test_bfloat16_inputs_give_float32(method):
  rng = np.random.default_rng(5)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 16, 4, 2, 8)
  execution = EnergyExecution(method)
  energy = potential_energy(jnp.asarray(embeddings, jnp.bfloat16), labels,
                            jnp.asarray(proxies, jnp.bfloat16), proxy_labels, execution=execution)
  assert energy.dtype == jnp.float32
  grad = jax.grad(lambda e: potential_energy(e, labels, jnp.asarray(proxies), proxy_labels,
                                             execution=execution))(
                                                 jnp.asarray(embeddings, jnp.bfloat16))
  assert grad.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(grad, np.float32)))


def test_unnormalised_proxies_option():
  rng = np.random.default_rng(6)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 30, 5, 3, 8)
  proxies = 0.9 * proxies
  for method in METHODS:
    got = energy_and_grads(embeddings, labels, proxies, proxy_labels, method=method,
                           normalize_proxies=False)
    want = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels, 3.0, 0.2,
                                           0.2, normalize_proxies=False)
    assert_matches_reference(got, want)


def test_auto_method_agrees_with_dense():
  rng = np.random.default_rng(7)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 64, 16, 4, 16)
  auto = energy_and_grads(embeddings, labels, proxies, proxy_labels)
  dense = energy_and_grads(embeddings, labels, proxies, proxy_labels, method="dense")
  assert_matches_reference(auto, dense)


@pytest.mark.parametrize("bad", [dict(alpha=0.0), dict(delta_att=-1.0), dict(delta_rep=np.nan),
                                 dict(execution=EnergyExecution("fast"))])
def test_bad_arguments_name_the_problem(bad):
  name = next(iter(bad))
  with pytest.raises(ValueError, match=name):
    potential_energy(jnp.ones((2, 3)), jnp.array([0, 1]), **bad)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("self_attraction", [True, False])
def test_proxy_self_attraction_switch_matches_float64_reference(method, self_attraction):
  """Same-class proxy-proxy pairs in or out, energy and gradients, padding rows included."""
  rng = np.random.default_rng(21)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 30, 6, 5, 8, spread=0.4)
  proxies = np.concatenate([proxies, rng.normal(size=(3, 8)).astype(np.float32)])
  proxy_labels = np.concatenate([proxy_labels, -np.ones(3, np.int32)])
  kwargs = dict(alpha=3.0, delta_att=0.2, delta_rep=0.3)
  got = energy_and_grads(embeddings, labels, proxies, proxy_labels, method=method,
                         proxy_self_attraction=self_attraction, **kwargs)
  want = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels,
                                         proxy_self_attraction=self_attraction, **kwargs)
  assert_matches_reference(got, want)


def test_without_proxy_self_attraction_the_proxies_of_a_class_feel_no_pull_from_each_other():
  """Two proxies of one class and nothing else: no energy and no force without the term."""
  proxies = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)  # far beyond delta_att
  embeddings, labels = np.array([[1.0, 1.0]], np.float32), np.array([-1], np.int32)
  proxy_labels = np.array([0, 0], np.int32)
  for method in METHODS:
    on = energy_and_grads(embeddings, labels, proxies, proxy_labels, method=method)
    off = energy_and_grads(embeddings, labels, proxies, proxy_labels, method=method,
                           proxy_self_attraction=False)
    assert on[0] == pytest.approx(-2 * 2 ** -1.5) and np.abs(on[2]).max() > 1
    assert off[0] == 0 and np.all(off[2] == 0)
