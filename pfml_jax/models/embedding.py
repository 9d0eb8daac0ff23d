"""The embedding model: pixel normalisation -> backbone -> pooling -> linear head -> norm.

Input: (B, H, W, 3) RGB pixels, uint8 or float in 0..255. The backbone's pixel transform
(channel order, scale, mean, std; see ``registry.py``) is applied in float32 and the result cast
to the compute ``dtype`` (bfloat16 on request). Pooling, the head and the output are float32.

Poolings: CNNs pool their last feature map by ``avg`` (GAP), ``max`` (GMP) or ``avg+max``
(their sum, as Proxy-Anchor/HIST code does); ViTs use the ``token`` pooling, the CLS token after
the final LayerNorm (DINO and timm's default). ``embedding_dim=None`` keeps the pooled feature.

Head: ``Dense(feature_dim -> embedding_dim)`` in float32 (HIGHEST matmul precision), kernel
N(0, 2 / embedding_dim) and zero bias: ``kaiming_normal_(mode='fan_out')`` + ``constant_(0)``,
the init of Proxy-Anchor's and HIST's reference code for the new embedding layer.

Output norm: ``l2`` (unit vectors) or ``layer_norm``, a LayerNorm without scale and shift
(eps 1e-5), as HIST's code (``nn.LayerNorm(embedding_size, elementwise_affine=False)``); its
output is not unit-norm (norm ~sqrt(dim)): every loss and the evaluator normalise themselves,
and HIST's hypergraph network reads it as it is.

Parameters: ``{"backbone": ..., "head": ...}`` (no "head" without a projection); CNNs also have
``batch_stats["backbone"]``.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import flax.linen as nn

from pfml_jax.models.registry import get_backbone_spec
from pfml_jax.numerics import l2_normalize
from pfml_jax.user_errors import ConfigError

# Initialisers of the new linear head: kaiming_normal_(mode='fan_out') with zero bias, as
# Proxy Anchor's and HIST's code; orthogonal with zero bias, as Hyp-DML's code (the ViT rows).
HEAD_INITS = {"kaiming_fan_out": nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
              "orthogonal": nn.initializers.orthogonal()}


def _avg(x: jnp.ndarray) -> jnp.ndarray:
  return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


def _max(x: jnp.ndarray) -> jnp.ndarray:
  return jnp.max(x, axis=(1, 2)).astype(jnp.float32)


POOLINGS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "avg": _avg,
    "max": _max,
    "avg+max": lambda x: _avg(x) + _max(x),
    "token": lambda tokens: tokens[:, 0].astype(jnp.float32),
}


def layer_normalize(x: jnp.ndarray, eps: float = 1e-5) -> jnp.ndarray:
  """(x - mean) / sqrt(var + eps) per row in float32 (biased variance, as torch's LayerNorm)."""
  x = x.astype(jnp.float32)
  centred = x - jnp.mean(x, axis=-1, keepdims=True)
  return centred * jax.lax.rsqrt(jnp.mean(centred * centred, axis=-1, keepdims=True) + eps)


OUTPUT_NORMS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "l2": l2_normalize, "layer_norm": layer_normalize}


class EmbeddingModel(nn.Module):
  """Backbone + pooling + optional projection, normalised float32 output."""

  backbone: nn.Module
  embedding_dim: int | None
  pooling: str
  channel_order: str
  pixel_scale: float
  mean: tuple[float, ...]
  std: tuple[float, ...]
  dtype: Any = jnp.float32
  head_init: str = "kaiming_fan_out"  # a key of HEAD_INITS
  embedding_norm: str = "l2"  # a key of OUTPUT_NORMS

  def setup(self):
    if self.embedding_dim is not None:
      self.head = nn.Dense(self.embedding_dim, dtype=jnp.float32, param_dtype=jnp.float32,
                           precision=jax.lax.Precision.HIGHEST,
                           kernel_init=HEAD_INITS[self.head_init],
                           bias_init=nn.initializers.zeros)

  def normalize_pixels(self, images: jnp.ndarray) -> jnp.ndarray:
    """Raw 0..255 RGB pixels -> the backbone's input, computed in float32, cast to dtype."""
    x = images.astype(jnp.float32)
    if self.channel_order == "BGR":
      x = x[..., ::-1]
    std = jnp.asarray(self.std, jnp.float32)
    x = x * (1.0 / (self.pixel_scale * std)) - jnp.asarray(self.mean, jnp.float32) / std
    return x.astype(self.dtype)

  def features(self, images: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    """(B, feature_dim) float32 pooled backbone features, before the head."""
    return POOLINGS[self.pooling](self.backbone(self.normalize_pixels(images), train))

  def __call__(self, images: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    """(B, embedding_dim or feature_dim) float32 embeddings, normalised by embedding_norm."""
    x = self.features(images, train)
    if self.embedding_dim is not None:
      x = self.head(x)
    return OUTPUT_NORMS[self.embedding_norm](x)


def check_head(head_init: str, embedding_norm: str) -> None:
  """Raises ConfigError for a head initialiser or an output normalisation not offered."""
  if head_init not in HEAD_INITS:
    raise ConfigError(f"head_init={head_init!r}: choose one of {sorted(HEAD_INITS)}.")
  if embedding_norm not in OUTPUT_NORMS:
    raise ConfigError(f"embedding_norm={embedding_norm!r}: choose one of "
                      f"{sorted(OUTPUT_NORMS)}.")


def make_embedding_model(backbone: str, embedding_dim: int | None, pooling: str | None = None,
                         frozen_bn: bool = False, dtype: Any = jnp.float32,
                         head_init: str = "kaiming_fan_out", embedding_norm: str = "l2",
                         platform: str | None = None,
                         **backbone_kwargs) -> EmbeddingModel:
  """The embedding model of a registered backbone.

  Args:
    backbone: a key of ``BACKBONES`` (e.g. "resnet50", "vit_s16").
    embedding_dim: output size of the linear head; None for no head (normalised features).
    pooling: one of the backbone's poolings ("avg", "max", "avg+max" for CNNs, "token" for
      ViTs); None picks the backbone's default ("avg" for CNNs, "token" for ViTs).
    frozen_bn: BatchNorm uses running statistics in training too and its statistics, scale
      and bias are not trained. Backbones without BatchNorm (ViTs) have nothing to freeze.
    dtype: compute dtype of the backbone (jnp.bfloat16 for mixed precision); parameters, the
      head and the output stay float32.
    head_init: initialiser of the head's kernel, a key of ``HEAD_INITS``.
    embedding_norm: "l2" (unit vectors) or "layer_norm" (LayerNorm without affine, HIST).
    platform: where the model will run ("cpu", "cuda", "rocm", "tpu"; None: the default
      device's), for backbones with a platform-dependent kernel (the ViTs' attention).
    **backbone_kwargs: overrides of the backbone constructor's fields (e.g. ``depth``).
  """
  spec = get_backbone_spec(backbone)
  pooling = spec.default_pooling if pooling is None else pooling
  if pooling not in spec.poolings:
    raise ConfigError(f"Backbone {backbone!r} supports pooling {list(spec.poolings)}, not "
                      f"{pooling!r}; ViTs embed the CLS token ('token'), CNNs pool their last "
                      "feature map ('avg', 'max', 'avg+max').")
  if embedding_dim is not None and embedding_dim <= 0:
    raise ConfigError(f"embedding_dim must be positive or None (no head), got {embedding_dim}.")
  check_head(head_init, embedding_norm)
  if spec.has_batch_norm:
    backbone_kwargs["frozen_bn"] = frozen_bn
  if spec.takes_platform:
    backbone_kwargs["platform"] = platform
  module = spec.constructor(dtype=dtype, **backbone_kwargs)
  return EmbeddingModel(backbone=module, embedding_dim=embedding_dim, pooling=pooling,
                        channel_order=spec.channel_order, pixel_scale=spec.pixel_scale,
                        mean=spec.mean, std=spec.std, dtype=dtype, head_init=head_init,
                        embedding_norm=embedding_norm)
