"""The ViT's padded attention and float32 exact GELU against float64 NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from pfml_jax.models.vit import GELUS, padded_attention
from tests.models.attention_reference import reference_attention


@pytest.mark.parametrize("token_multiple", [8, 64])
def test_padded_attention_equals_unpadded(token_multiple):
  """Masked padding tokens change nothing, in values and in gradients (XLA's implementation
  runs the same padding and masks as cuDNN's on a GPU)."""
  rng = np.random.default_rng(0)
  q, k, v = (rng.normal(size=(2, 197, 3, 16)).astype(np.float32) for _ in range(3))
  weights = rng.normal(size=q.shape)
  got = padded_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), token_multiple, "xla")
  np.testing.assert_allclose(got, reference_attention(q, k, v), rtol=1e-5, atol=1e-5)

  def loss(token_multiple, q, k, v):
    return jnp.sum(weights * padded_attention(q, k, v, token_multiple, "xla"))

  grad = jax.jit(jax.grad(loss, argnums=(1, 2, 3)), static_argnums=0)
  for g, want in zip(grad(token_multiple, q, k, v), grad(1, q, k, v)):
    np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(GELUS))
def test_exact_gelu_and_its_derivative(name):
  x = np.linspace(-8.0, 8.0, 1601)
  want = x * 0.5 * (1 + erf(x / np.sqrt(2)))
  slope = 0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-x**2 / 2) / np.sqrt(2 * np.pi)
  gelu = GELUS[name]
  np.testing.assert_allclose(gelu(jnp.asarray(x, jnp.float32)), want, rtol=1e-5, atol=2e-6)
  got_slope = jax.vmap(jax.grad(gelu))(jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(got_slope, slope, rtol=1e-5, atol=2e-6)
  out = gelu(jnp.asarray(x, jnp.bfloat16))
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float64), want, rtol=2e-2, atol=2e-2)
