"""Learnable proxies: M points per training class that create and feel the losses' fields.

Layout: class-major, ``proxies[c * M + m]`` is proxy m of class c, so ``proxy_labels(N, M)`` is
``[0]*M + [1]*M + ...``. Proxies stay float32 whatever the backbone's compute dtype.
"""

import jax
import jax.numpy as jnp


def proxy_labels(num_classes: int, per_class: int) -> jnp.ndarray:
  """(num_classes * per_class,) int32 class of every proxy, class-major."""
  return jnp.repeat(jnp.arange(num_classes, dtype=jnp.int32), per_class)


def init_proxies(rng: jax.Array, num_classes: int, per_class: int, dim: int,
                 scheme: str = "unit_normal") -> jnp.ndarray:
  """Initial (num_classes * per_class, dim) float32 proxies.

  Schemes:
    unit_normal: i.i.d. N(0, 1) vectors scaled to unit norm, i.e. directions uniform on the
      sphere (PFML's default: the paper states no scheme; unit norm gives delta the same
      meaning for proxies and embeddings).
    kaiming_normal: N(0, 2 / dim) entries, as Proxy-Anchor's reference code
      (``nn.init.kaiming_normal_(mode='fan_out')``).
  """
  shape = (num_classes * per_class, dim)
  if scheme == "unit_normal":
    x = jax.random.normal(rng, shape, jnp.float32)
    return x / jnp.linalg.norm(x, axis=1, keepdims=True)
  if scheme == "kaiming_normal":
    return jax.random.normal(rng, shape, jnp.float32) * jnp.sqrt(2.0 / dim)
  raise ValueError(f"init_proxies: unknown scheme {scheme!r}; use 'unit_normal' or "
                   "'kaiming_normal'.")
