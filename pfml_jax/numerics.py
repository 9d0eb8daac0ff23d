"""Numerical helpers shared by the models and the losses."""

import jax
import jax.numpy as jnp


def l2_normalize(x: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
  """x / ||x|| per row in float32; a zero row stays zero, with finite gradients."""
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))
