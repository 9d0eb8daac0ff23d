"""BatchNorm with PyTorch's semantics and a frozen mode, for CNN backbones.

Matches ``torch.nn.BatchNorm2d`` (eps 1e-5, momentum 0.1 = running <- 0.9 running + 0.1 batch,
unbiased variance in the running estimate, biased variance to normalise), so imported weights
and running statistics mean the same thing. Statistics and the affine transform are computed in
float32 whatever the activation dtype; the output has the activation dtype. ``relu=True`` and a
``residual`` fold the CNNs' BN -> (+ shortcut) -> ReLU into the same passes over the activations.

Frozen (``frozen=True``, the DML recipe on CUB/Cars): running statistics are used in train
mode too, they are never updated, and no gradient reaches scale or bias.

Training with batch statistics has two implementations (``implementation``) of the same
function: "autodiff" (default), JAX's derivative of the formula, and "fused", a hand-written
backward pass that reads the input and the output gradient twice, once for both per-channel sums
(one reduction kernel) and once for the input gradient. "autodiff" is the default: "fused"
moves fewer bytes in the compiled HLO but trains ResNet-50 more slowly on an H100
(docs/benchmarks.md, benchmarks/backbone_variants.py).
"""

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import flax.linen as nn

Stats = tuple[jnp.ndarray, jnp.ndarray]


@jax.custom_jvp
def relu(x: jnp.ndarray) -> jnp.ndarray:
  """max(x, 0) whose derivative reads the output (x > 0 iff relu(x) > 0), not the input.

  Nothing but the output is kept for the backward pass, so XLA can fuse the ReLU into a cuDNN
  convolution (which writes only the activated output). Same values and gradients as
  ``jax.nn.relu``.
  """
  return jnp.maximum(x, 0)


@relu.defjvp
def _relu_jvp(primals, tangents):
  # The barrier stops XLA from rewriting max(x, 0) > 0 as x > 0, which would keep x alive.
  y = jax.lax.optimization_barrier(relu(primals[0]))
  return y, jnp.where(y > 0, tangents[0], jnp.zeros_like(tangents[0]))


def _moments(x32: jnp.ndarray) -> Stats:
  """Per-channel mean and biased variance, one pass (E[x^2] - E[x]^2, clipped at 0)."""
  axes = tuple(range(x32.ndim - 1))
  mean = jnp.mean(x32, axis=axes)
  return mean, jnp.maximum(jnp.mean(jnp.square(x32), axis=axes) - jnp.square(mean), 0.0)


def _affine(x: jnp.ndarray, mean: jnp.ndarray, multiplier: jnp.ndarray, bias: jnp.ndarray,
            dtype: Any) -> jnp.ndarray:
  """((x - mean) * multiplier + bias) in float32, cast to dtype."""
  return ((x.astype(jnp.float32) - mean) * multiplier + bias).astype(dtype)


def _train_autodiff(x, residual, scale, bias, epsilon, with_relu, dtype):
  """The formula, differentiated by JAX."""
  mean, var = _moments(x.astype(jnp.float32))
  y = _affine(x, mean, scale * jax.lax.rsqrt(var + epsilon), bias, dtype)
  y = y if residual is None else y + residual
  return (jax.nn.relu(y) if with_relu else y), mean, var


def _pre_activation(x, residual, mean, multiplier, bias, dtype):
  y = _affine(x, mean, multiplier, bias, dtype)
  return y if residual is None else y + residual


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _train_fused(x, residual, scale, bias, epsilon, with_relu, dtype):
  """(normalised x [+ residual] [ReLU'd], batch mean, biased batch variance)."""
  mean, var = _moments(x.astype(jnp.float32))
  y = _pre_activation(x, residual, mean, scale * jax.lax.rsqrt(var + epsilon), bias, dtype)
  return (jnp.maximum(y, 0) if with_relu else y), mean, var


def _train_fused_fwd(x, residual, scale, bias, epsilon, with_relu, dtype):
  outputs = _train_fused(x, residual, scale, bias, epsilon, with_relu, dtype)
  return outputs, (x, residual, scale, bias, outputs[1], outputs[2])


def _train_fused_bwd(epsilon, with_relu, dtype, saved, cotangents):
  """Gradients of (y, mean, var) -> (x, residual, scale, bias).

  With c = x - mean, r = rsqrt(var + eps), g the output gradient (zero where the ReLU was off,
  also the residual's gradient): d bias = sum g, d scale = r sum(g c), and
  dx = scale r g - scale r (sum g) / n - scale r^3 c sum(g c) / n  (+ the mean's and variance's
  own gradients, d mean / n + 2 d var c / n). One pass over (x, residual, dy) makes both sums,
  a second one dx and the residual's gradient.
  """
  # The barriers keep XLA from sharing full-size values with the forward pass or between the
  # two passes (it would write them out); each pass recomputes them from its inputs.
  x, residual, scale, bias, mean, var = jax.lax.optimization_barrier(saved)
  d_y, d_mean, d_var = cotangents
  count = x.size // x.shape[-1]
  rstd = jax.lax.rsqrt(var + epsilon)
  multiplier = scale * rstd

  def gradient_and_centered(x, residual, d_y):
    g = d_y.astype(jnp.float32)
    if with_relu:
      on = _pre_activation(x, residual, mean, multiplier, bias, dtype) > 0
      g = jnp.where(on, g, 0.0)
    return g, x.astype(jnp.float32) - mean

  g, centered = gradient_and_centered(x, residual, d_y)
  # One reduction of the stacked pair: XLA fuses the ReLU mask into it (with two reductions it
  # writes the mask out and reads it back).
  axes = tuple(range(x.ndim - 1))
  g_sum, gc_sum = jnp.sum(jnp.stack([g, g * centered], axis=-2), axis=axes)
  g_sum, gc_sum, x, residual, d_y = jax.lax.optimization_barrier(
      (g_sum, gc_sum, x, residual, d_y))
  g, centered = gradient_and_centered(x, residual, d_y)
  k1 = (2.0 * d_var - multiplier * rstd * rstd * gc_sum) / count
  k0 = (d_mean - multiplier * g_sum) / count
  d_x = (g * multiplier + centered * k1 + k0).astype(x.dtype)
  d_residual = None if residual is None else g.astype(residual.dtype)
  return d_x, d_residual, gc_sum * rstd, g_sum


_train_fused.defvjp(_train_fused_fwd, _train_fused_bwd)

# Training with batch statistics:
# (x, residual or None, scale, bias, epsilon, with_relu, dtype) -> (y, batch mean, biased variance).
IMPLEMENTATIONS: dict[str, Callable[..., tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]]] = {
    "fused": _train_fused,
    "autodiff": _train_autodiff,
}


class BatchNorm(nn.Module):
  """Normalises over every axis but the last (channels, NHWC)."""

  frozen: bool = False
  relu: bool = False  # apply a ReLU to the output
  implementation: str = "autodiff"  # training with batch statistics: a key of IMPLEMENTATIONS
  momentum: float = 0.9  # weight of the old running value (PyTorch momentum 0.1)
  epsilon: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def _variables(self, channels: int) -> tuple[jnp.ndarray, jnp.ndarray, Any, Any]:
    """scale, bias (parameters) and the running mean and variance (``batch_stats``)."""
    return (self.param("scale", nn.initializers.ones, (channels,), jnp.float32),
            self.param("bias", nn.initializers.zeros, (channels,), jnp.float32),
            self.variable("batch_stats", "mean", jnp.zeros, (channels,), jnp.float32),
            self.variable("batch_stats", "var", jnp.ones, (channels,), jnp.float32))

  def running_affine(self, channels: int) -> Stats:
    """(multiplier, shift) in float32: with running statistics BatchNorm(x) = x * m + s.

    For folding into the preceding convolution; frozen BatchNorm passes no gradient to them.
    """
    scale, bias, running_mean, running_var = self._variables(channels)
    if self.frozen:
      scale, bias = jax.lax.stop_gradient(scale), jax.lax.stop_gradient(bias)
    multiplier = scale * jax.lax.rsqrt(running_var.value + self.epsilon)
    return multiplier, bias - running_mean.value * multiplier

  def __call__(self, x: jnp.ndarray, train: bool,
               residual: jnp.ndarray | None = None) -> jnp.ndarray:
    """BatchNorm(x) [+ residual] [-> ReLU]; ``residual`` (same shape) is added before the ReLU."""
    if self.implementation not in IMPLEMENTATIONS:
      raise ValueError(f"BatchNorm implementation must be one of {sorted(IMPLEMENTATIONS)}, "
                       f"got {self.implementation!r}.")
    channels = x.shape[-1]
    dtype = jnp.dtype(self.dtype)
    if train and not self.frozen:
      scale, bias, running_mean, running_var = self._variables(channels)
      y, mean, var = IMPLEMENTATIONS[self.implementation](
          x, residual, scale, bias, self.epsilon, self.relu, dtype)
      if not self.is_initializing():
        count = x.size // channels
        unbiased = var * (count / max(count - 1, 1))
        stats = jax.lax.stop_gradient((mean, unbiased))
        running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * stats[0]
        running_var.value = self.momentum * running_var.value + (1 - self.momentum) * stats[1]
      return y
    scale, bias, running_mean, running_var = self._variables(channels)
    if self.frozen:
      scale, bias = jax.lax.stop_gradient(scale), jax.lax.stop_gradient(bias)
    multiplier = scale * jax.lax.rsqrt(running_var.value + self.epsilon)
    y = _pre_activation(x, residual, running_mean.value, multiplier, bias, dtype)
    return relu(y) if self.relu else y
