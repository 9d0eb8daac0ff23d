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
    kaiming_normal: N(0, 2 / rows) entries with rows = num_classes * per_class, as Proxy
      Anchor's reference code (``nn.init.kaiming_normal_(proxies, mode='fan_out')`` on a
      (num_classes, dim) tensor): torch's fan_out of a 2-D tensor is ``size(0)``, its row
      count, not dim. One proxy per class on CUB (100 classes): std 0.141, row norm ~3.2 at
      dim 512. With M proxies per class the tensor is (num_classes * M, dim), so fan_out is
      num_classes * M.
  """
  shape = (num_classes * per_class, dim)
  if scheme == "unit_normal":
    x = jax.random.normal(rng, shape, jnp.float32)
    # A Gaussian row is never zero. Plain division, not ``numerics.l2_normalize`` (rsqrt): the
    # two differ in the last float32 bit, and runs reproduce their proxies bit for bit.
    return x / jnp.linalg.norm(x, axis=1, keepdims=True)
  if scheme == "kaiming_normal":
    fan_out = shape[0]  # torch: fan_out of a 2-D weight is size(0)
    return jax.random.normal(rng, shape, jnp.float32) * jnp.sqrt(2.0 / fan_out)
  raise ValueError(f"init_proxies: unknown scheme {scheme!r}; use 'unit_normal' or "
                   "'kaiming_normal'.")
