"""ResNet-50 with the torchvision/timm topology (ResNet v1.5: stride on the 3x3 conv), NHWC.

Module names follow torchvision's so the weight import is a rename (``layer1_0/bn1`` <->
``layer1.0.bn1``; ``downsample_conv``/``downsample_bn`` <-> ``downsample.0``/``.1``). Returns
the last (B, h, w, 2048) feature map; pooling and the head live in ``embedding.py``.
"""

import functools
from typing import Any, Sequence

import jax.numpy as jnp
import flax.linen as nn

from pfml_jax.models.batch_norm import BatchNorm

EXPANSION = 4
# torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu") for every conv.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (strided) -> 1x1 convolutions with BatchNorm, plus the shortcut."""

  width: int
  strides: int
  downsample: bool
  frozen_bn: bool
  dtype: Any

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=conv_init)
    norm = functools.partial(BatchNorm, frozen=self.frozen_bn, dtype=self.dtype)
    y = nn.relu(norm(name="bn1")(conv(self.width, (1, 1), name="conv1")(x), train))
    y = conv(self.width, (3, 3), strides=self.strides, padding=((1, 1), (1, 1)), name="conv2")(y)
    y = nn.relu(norm(name="bn2")(y, train))
    y = norm(name="bn3")(conv(self.width * EXPANSION, (1, 1), name="conv3")(y), train)
    shortcut = x
    if self.downsample:
      shortcut = conv(self.width * EXPANSION, (1, 1), strides=self.strides,
                      name="downsample_conv")(x)
      shortcut = norm(name="downsample_bn")(shortcut, train)
    return nn.relu(y + shortcut)


class ResNet(nn.Module):
  """Bottleneck ResNet; (3, 4, 6, 3) blocks and width 64 is ResNet-50."""

  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  width: int = 64
  frozen_bn: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = nn.Conv(self.width, (7, 7), strides=2, padding=((3, 3), (3, 3)), use_bias=False,
                dtype=self.dtype, kernel_init=conv_init, name="conv1")(x)
    x = nn.relu(BatchNorm(frozen=self.frozen_bn, dtype=self.dtype, name="bn1")(x, train))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        x = Bottleneck(width=self.width * 2**stage,
                       strides=2 if stage > 0 and block == 0 else 1,
                       downsample=block == 0, frozen_bn=self.frozen_bn, dtype=self.dtype,
                       name=f"layer{stage + 1}_{block}")(x, train)
    return x

