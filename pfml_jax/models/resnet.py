"""ResNet-50 with the torchvision/timm topology (ResNet v1.5: stride on the 3x3 conv), NHWC.

Module names follow torchvision's so the weight import is a rename (``layer1_0/bn1`` <->
``layer1.0.bn1``; ``downsample_conv``/``downsample_bn`` <-> ``downsample.0``/``.1``). Returns
the last (B, h, w, 2048) feature map; pooling and the head live in ``embedding.py``.

Every convolution is followed by BatchNorm; the ReLUs and the residual additions are folded into
the BatchNorm that precedes them (see ``batch_norm.py``). ``fold_frozen_bn=True`` (default)
folds BatchNorm with running statistics (frozen, or in eval mode) into the convolution instead:
the kernel is scaled per output channel and the shift added to the convolution's output, which
XLA fuses into cuDNN's convolution-bias-(residual)-ReLU kernel, so the normalisation costs no
pass over the activations. Mathematically the same function; in bfloat16 the scaled kernel and
the shift are rounded to bfloat16. ``fold_frozen_bn=False`` normalises in a separate pass.
"""

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

from pfml_jax.models.batch_norm import BatchNorm, relu

EXPANSION = 4
# torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu") for every conv.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class Conv(nn.Module):
  """Bias-free NHWC convolution with ``nn.Conv``'s parameter ("kernel", HWIO, float32) and
  torchvision's padding (kernel_size // 2); the kernel can be scaled per output channel."""

  features: int
  kernel_size: int
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, kernel_scale: jnp.ndarray | None = None) -> jnp.ndarray:
    k = self.kernel_size
    kernel = self.param("kernel", conv_init, (k, k, x.shape[-1], self.features), jnp.float32)
    if kernel_scale is not None:
      kernel = kernel * kernel_scale
    return jax.lax.conv_general_dilated(
        x.astype(self.dtype), kernel.astype(self.dtype), (self.strides, self.strides),
        ((k // 2, k // 2), (k // 2, k // 2)), dimension_numbers=("NHWC", "HWIO", "NHWC"))


@dataclasses.dataclass(frozen=True)
class NormOptions:
  """How BatchNorm runs (see the module docstring and ``batch_norm.py``)."""

  frozen: bool
  implementation: str
  fold: bool
  dtype: Any


def conv_bn(x: jnp.ndarray, train: bool, options: NormOptions, features: int, kernel_size: int,
            strides: int, names: tuple[str, str], activate: bool = True,
            residual: jnp.ndarray | None = None) -> jnp.ndarray:
  """Conv -> BatchNorm [+ residual] [-> ReLU], as submodules ``names`` of the calling module.

  Nine parameters on purpose: what the network shares is grouped in ``options``; the rest is
  this layer's own (input, mode, width, kernel, stride, names, activation, residual), as a
  Flax layer's constructor and call would take them.
  """
  conv = Conv(features, kernel_size, strides, options.dtype, name=names[0])
  norm = BatchNorm(frozen=options.frozen, relu=activate, implementation=options.implementation,
                   dtype=options.dtype, name=names[1])
  if not (options.fold and (options.frozen or not train)):
    return norm(conv(x), train, residual)
  multiplier, shift = norm.running_affine(features)
  y = conv(x, kernel_scale=multiplier) + shift.astype(options.dtype)
  y = y if residual is None else y + residual
  return relu(y) if activate else y


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (strided) -> 1x1 convolutions with BatchNorm, plus the shortcut."""

  width: int
  strides: int
  downsample: bool
  norm: NormOptions

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    y = conv_bn(x, train, self.norm, self.width, 1, 1, ("conv1", "bn1"))
    y = conv_bn(y, train, self.norm, self.width, 3, self.strides, ("conv2", "bn2"))
    shortcut = x
    if self.downsample:
      shortcut = conv_bn(x, train, self.norm, self.width * EXPANSION, 1, self.strides,
                         ("downsample_conv", "downsample_bn"), activate=False)
    return conv_bn(y, train, self.norm, self.width * EXPANSION, 1, 1, ("conv3", "bn3"),
                   residual=shortcut)


class ResNet(nn.Module):
  """Bottleneck ResNet; (3, 4, 6, 3) blocks and width 64 is ResNet-50."""

  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  width: int = 64
  frozen_bn: bool = False
  # "autodiff": the faster of the two on an H100 (docs/benchmarks.md).
  batch_norm: str = "autodiff"  # BatchNorm's training implementation (batch_norm.IMPLEMENTATIONS)
  fold_frozen_bn: bool = True  # fold running-statistics BatchNorm into the convolutions
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    norm = NormOptions(self.frozen_bn, self.batch_norm, self.fold_frozen_bn, self.dtype)
    x = conv_bn(x, train, norm, self.width, 7, 2, ("conv1", "bn1"))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        x = Bottleneck(width=self.width * 2**stage,
                       strides=2 if stage > 0 and block == 0 else 1,
                       downsample=block == 0, norm=norm,
                       name=f"layer{stage + 1}_{block}")(x, train)
    return x
