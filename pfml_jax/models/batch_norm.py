"""BatchNorm with PyTorch's semantics and a frozen mode, for CNN backbones.

Matches ``torch.nn.BatchNorm2d`` (eps 1e-5, momentum 0.1 = running <- 0.9 running + 0.1 batch,
unbiased variance in the running estimate, biased variance to normalise), so imported weights
and running statistics mean the same thing. Statistics and the affine transform are computed in
float32 whatever the activation dtype; the output has the activation dtype.

Frozen (``frozen=True``, the DML recipe on CUB/Cars): running statistics are used in train
mode too, they are never updated, and no gradient reaches scale or bias.
"""

from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn


class BatchNorm(nn.Module):
  """Normalises over every axis but the last (channels, NHWC)."""

  frozen: bool = False
  momentum: float = 0.9  # weight of the old running value (PyTorch momentum 0.1)
  epsilon: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    channels = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (channels,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (channels,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (channels,), jnp.float32)
    x32 = x.astype(jnp.float32)
    if train and not self.frozen:
      axes = tuple(range(x.ndim - 1))
      mean = jnp.mean(x32, axis=axes)
      var = jnp.maximum(jnp.mean(jnp.square(x32), axis=axes) - jnp.square(mean), 0.0)
      if not self.is_initializing():
        count = x.size // channels
        unbiased = var * (count / max(count - 1, 1))
        stats = jax.lax.stop_gradient((mean, unbiased))
        running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * stats[0]
        running_var.value = self.momentum * running_var.value + (1 - self.momentum) * stats[1]
    else:
      mean, var = running_mean.value, running_var.value
    if self.frozen:
      scale, bias = jax.lax.stop_gradient(scale), jax.lax.stop_gradient(bias)
    multiplier = scale * jax.lax.rsqrt(var + self.epsilon)
    return ((x32 - mean) * multiplier + bias).astype(self.dtype)
