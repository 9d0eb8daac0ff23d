"""BN-Inception as used in deep metric learning: the Caffe-derived network of the Cadene
``bninception`` weights (``bn_inception-52deb4733.pth``), NHWC.

Topology (Ioffe & Szegedy 2015, as ported from Caffe): a 7x7/2 stem, 1x1 and 3x3 convolutions,
ten inception blocks (3a-3c, 4a-4e, 5a-5b) with 1x1, 3x3, double-3x3 and pooling branches,
BatchNorm (eps 1e-5) + ReLU after every convolution, max pooling with Caffe's ceil rounding.
The reduction blocks 3c and 4e stride their 3x3 branches and pass the max-pooled input through;
5b pools its last branch with a max (the others average, padding counted). Convolutions have
biases. Layer names are the Cadene state-dict names (``inception_3a_1x1``,
``inception_3a_1x1_bn``), so the weight import is a rename. Input: BGR, 0-255, minus the
per-channel mean (104, 117, 128); the embedding model applies that.
"""

import math
from typing import Any, NamedTuple, Sequence

import jax.numpy as jnp
import flax.linen as nn

from pfml_jax.models.batch_norm import BatchNorm

# PyTorch's Conv2d default init (kaiming_uniform_ with a = sqrt(5)), which the Cadene port keeps.
conv_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class InceptionBlock(NamedTuple):
  """Output channels of each branch of one block; 0 means the branch is absent."""

  n1x1: int
  n3x3_reduce: int
  n3x3: int
  n_double_reduce: int
  n_double: int
  pool: str  # "avg" or "max"
  pool_proj: int  # 0: the pooled input itself is concatenated (reduction blocks)
  stride: int


BLOCKS = {
    "3a": InceptionBlock(64, 64, 64, 64, 96, "avg", 32, 1),
    "3b": InceptionBlock(64, 64, 96, 64, 96, "avg", 64, 1),
    "3c": InceptionBlock(0, 128, 160, 64, 96, "max", 0, 2),
    "4a": InceptionBlock(224, 64, 96, 96, 128, "avg", 128, 1),
    "4b": InceptionBlock(192, 96, 128, 96, 128, "avg", 128, 1),
    "4c": InceptionBlock(160, 128, 160, 128, 160, "avg", 128, 1),
    "4d": InceptionBlock(96, 128, 192, 160, 192, "avg", 128, 1),
    "4e": InceptionBlock(0, 128, 192, 192, 256, "max", 0, 2),
    "5a": InceptionBlock(352, 192, 320, 160, 224, "avg", 128, 1),
    "5b": InceptionBlock(352, 192, 320, 192, 224, "max", 128, 1),
}


def max_pool_ceil(x: jnp.ndarray, window: int, stride: int, padding: int = 0) -> jnp.ndarray:
  """Max pooling with Caffe's/PyTorch's ``ceil_mode=True`` output size."""
  pads = []
  for size in x.shape[1:3]:
    out = math.ceil((size + 2 * padding - window) / stride) + 1
    if (out - 1) * stride >= size + padding:  # the last window must start inside the input
      out -= 1
    pads.append((padding, (out - 1) * stride + window - size - padding))
  return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pads)


class BNInception(nn.Module):
  """BN-Inception features: the (B, h, w, 1024) output of block 5b."""

  blocks: Sequence[str] = tuple(BLOCKS)
  width_divisor: int = 1  # > 1 only for the tiny test variant
  frozen_bn: bool = False
  dtype: Any = jnp.float32

  def conv_bn_relu(self, x: jnp.ndarray, name: str, features: int, kernel: int,
                   stride: int = 1, train: bool = False) -> jnp.ndarray:
    """Conv (with bias) -> BatchNorm -> ReLU, named ``name`` and ``name + '_bn'``."""
    pad = kernel // 2
    x = nn.Conv(max(1, math.ceil(features / self.width_divisor)), (kernel, kernel),
                strides=stride, padding=((pad, pad), (pad, pad)), dtype=self.dtype,
                kernel_init=conv_init, name=name)(x)
    return nn.relu(BatchNorm(frozen=self.frozen_bn, dtype=self.dtype, name=f"{name}_bn")(x, train))

  def inception(self, x: jnp.ndarray, prefix: str, block: InceptionBlock,
                train: bool) -> jnp.ndarray:
    branches = []
    if block.n1x1:
      branches.append(self.conv_bn_relu(x, f"{prefix}_1x1", block.n1x1, 1, train=train))
    y = self.conv_bn_relu(x, f"{prefix}_3x3_reduce", block.n3x3_reduce, 1, train=train)
    branches.append(self.conv_bn_relu(y, f"{prefix}_3x3", block.n3x3, 3, block.stride, train))
    y = self.conv_bn_relu(x, f"{prefix}_double_3x3_reduce", block.n_double_reduce, 1,
                          train=train)
    y = self.conv_bn_relu(y, f"{prefix}_double_3x3_1", block.n_double, 3, train=train)
    branches.append(self.conv_bn_relu(y, f"{prefix}_double_3x3_2", block.n_double, 3,
                                      block.stride, train))
    if block.pool == "max":
      y = max_pool_ceil(x, 3, block.stride, padding=1 if block.stride == 1 else 0)
    else:
      y = nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                      count_include_pad=True)
    if block.pool_proj:
      y = self.conv_bn_relu(y, f"{prefix}_pool_proj", block.pool_proj, 1, train=train)
    branches.append(y)
    return jnp.concatenate(branches, axis=-1)

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = self.conv_bn_relu(x, "conv1_7x7_s2", 64, 7, 2, train)
    x = max_pool_ceil(x, 3, 2)
    x = self.conv_bn_relu(x, "conv2_3x3_reduce", 64, 1, train=train)
    x = self.conv_bn_relu(x, "conv2_3x3", 192, 3, train=train)
    x = max_pool_ceil(x, 3, 2)
    for name in self.blocks:
      x = self.inception(x, f"inception_{name}", BLOCKS[name], train)
    return x
