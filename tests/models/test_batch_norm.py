"""BatchNorm's hand-written backward pass, its ReLU and the folded frozen BatchNorm, against
float64 NumPy (finite differences) and against the automatic derivative."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.models.batch_norm import BatchNorm, relu
from pfml_jax.models.resnet import ResNet

EPS = 1e-5


def reference(x, residual, scale, bias):
  """float64 BatchNorm (two-pass variance) + residual -> ReLU, and the batch statistics."""
  mean = x.mean(axis=(0, 1, 2))
  var = ((x - mean) ** 2).mean(axis=(0, 1, 2))
  y = (x - mean) / np.sqrt(var + EPS) * scale + bias + residual
  return np.maximum(y, 0.0), mean, var


def finite_difference_gradients(f, arrays, h=1e-6):
  grads = []
  for a in arrays:
    g = np.zeros_like(a)
    for index in np.ndindex(a.shape):
      up, down = a.copy(), a.copy()
      up[index] += h
      down[index] -= h
      g[index] = (f(*[up if b is a else b for b in arrays])
                  - f(*[down if b is a else b for b in arrays])) / (2 * h)
    grads.append(g)
  return grads


@pytest.fixture(scope="module")
def problem():
  rng = np.random.default_rng(0)
  x = rng.normal(0.5, 2.0, (2, 3, 3, 4))
  residual = rng.normal(size=x.shape)
  scale, bias = rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.3, 4)
  weights = rng.normal(size=x.shape)  # loss = sum(weights * output) + stats terms
  return x, residual, scale, bias, weights


def apply(implementation, x, residual, scale, bias):
  module = BatchNorm(relu=True, implementation=implementation)
  variables = {"params": {"scale": scale, "bias": bias},
               "batch_stats": {"mean": jnp.zeros(4), "var": jnp.ones(4)}}
  y, updates = module.apply(variables, x, True, residual, mutable=["batch_stats"])
  return y, updates["batch_stats"]


@pytest.mark.parametrize("implementation", ["fused", "autodiff"])
def test_gradients_and_statistics_match_float64(problem, implementation):
  x, residual, scale, bias, weights = problem

  def loss(x, residual, scale, bias):
    y, stats = apply(implementation, x, residual, scale, bias)
    return jnp.sum(weights * y)

  args = [jnp.asarray(a, jnp.float32) for a in (x, residual, scale, bias)]
  got = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))(*args)
  want = finite_difference_gradients(
      lambda *a: float(np.sum(weights * reference(*a)[0])), [x, residual, scale, bias])
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-4)
  y, stats = jax.jit(apply, static_argnums=0)(implementation, *args)
  want_y, mean, var = reference(x, residual, scale, bias)
  np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
  count = x.size // 4
  np.testing.assert_allclose(stats["mean"], 0.1 * mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * var * count / (count - 1), rtol=1e-5)


def test_fused_backward_without_relu_or_residual_equals_autodiff(problem):
  x, _, scale, bias, weights = problem

  def loss(implementation, x, scale, bias):
    y, stats = BatchNorm(implementation=implementation).apply(
        {"params": {"scale": scale, "bias": bias},
         "batch_stats": {"mean": jnp.zeros(4), "var": jnp.ones(4)}},
        x, True, mutable=["batch_stats"])
    return jnp.sum(weights * y)

  args = [jnp.asarray(a, jnp.float32) for a in (x, scale, bias)]
  grad = jax.jit(jax.grad(loss, argnums=(1, 2, 3)), static_argnums=0)
  for got, want in zip(grad("fused", *args), grad("autodiff", *args)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_relu_matches_jax_relu_including_zero():
  x = jnp.asarray([-1.0, 0.0, 2.0, -0.0, 3.5], jnp.bfloat16)
  np.testing.assert_array_equal(relu(x), jax.nn.relu(x))
  grad = lambda f: jax.grad(lambda v: jnp.sum(f(v).astype(jnp.float32) * jnp.arange(5.0)))(x)
  np.testing.assert_array_equal(grad(relu), grad(jax.nn.relu))


def test_folded_frozen_batch_norm_is_the_same_function():
  """fold_frozen_bn: same features and gradients (float32), BN parameters still untrained."""
  kwargs = dict(stage_sizes=(1, 1), width=4, frozen_bn=True)
  images = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  variables = ResNet(**kwargs).init(jax.random.key(0), images, train=False)
  rng = np.random.default_rng(0)
  variables = jax.tree_util.tree_map_with_path(
      lambda path, v: (jnp.asarray(rng.uniform(0.5, 2.0, v.shape), v.dtype)
                       if jax.tree_util.keystr(path).endswith(("['var']", "['scale']"))
                       else v + jnp.asarray(rng.normal(0, 0.2, v.shape), v.dtype)), variables)

  def loss(fold, params):
    out = ResNet(**kwargs, fold_frozen_bn=fold).apply({**variables, "params": params}, images,
                                                      train=True)
    return jnp.sum(out ** 2), out

  results = [jax.jit(jax.grad(loss, argnums=1, has_aux=True), static_argnums=0)(
      fold, variables["params"]) for fold in (False, True)]
  (grads, out), (folded_grads, folded_out) = results
  np.testing.assert_allclose(folded_out, out, rtol=1e-4, atol=1e-4)
  for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
    folded = folded_grads
    for key in path:
      folded = folded[key.key]
    if "bn" in jax.tree_util.keystr(path):
      np.testing.assert_array_equal(folded, 0.0)
    else:
      np.testing.assert_allclose(folded, g, rtol=1e-3, atol=1e-3 * float(jnp.abs(g).max()))


def test_unknown_implementation_is_refused():
  with pytest.raises(ValueError, match="fused"):
    BatchNorm(implementation="cudnn").init(jax.random.key(0), jnp.ones((2, 4)), True)
