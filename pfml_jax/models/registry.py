"""Backbones by config name, each with the input transform its pretrained weights expect.

A ``BackboneSpec`` carries everything that belongs to a backbone rather than to an experiment:
its constructor, feature size, the poolings it supports, the checkpoint layout it imports, and
the pixel transform (crop and resize sizes, interpolation, channel order, scale, mean, std).
The data pipeline reads the sizes and interpolation; the embedding model applies the rest.
"""

import dataclasses
import functools
from typing import Callable

import flax.linen as nn

from pfml_jax.models.bninception import BNInception
from pfml_jax.models.resnet import ResNet
from pfml_jax.models.vit import VisionTransformer
from pfml_jax.user_errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CNN_POOLINGS = ("avg", "max", "avg+max")  # the first is the default
TOKEN_POOLINGS = ("token",)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
  """A registered backbone and the input transform of its pretrained weights.

  The model maps raw pixels p (0..255, RGB) to ``(p[order] / pixel_scale - mean) / std`` with
  ``mean``/``std`` given in the channel order the network expects.
  """

  constructor: Callable[..., nn.Module]  # called with dtype= (and frozen_bn= if has_batch_norm)
  weight_layout: str  # key of pretrained.LAYOUTS: the checkpoint format it imports
  feature_dim: int  # size of the pooled feature
  default_embedding_dim: int  # the literature's embedding size for this backbone
  poolings: tuple[str, ...]  # supported poolings; the first is the default
  has_batch_norm: bool  # False: nothing to freeze, no batch_stats collection
  image_size: int = 224  # train crop and eval center crop
  resize_size: int = 256  # eval: resize the shorter side to this, then center-crop
  interpolation: str = "bilinear"  # for resizing and random-resized crops
  channel_order: str = "RGB"  # what the network's first convolution expects
  pixel_scale: float = 255.0  # raw pixels are divided by this (255: to 0..1)
  mean: tuple[float, float, float] = IMAGENET_MEAN
  std: tuple[float, float, float] = IMAGENET_STD
  takes_platform: bool = False  # the constructor takes platform= (a platform-dependent kernel)

  @property
  def default_pooling(self) -> str:
    return self.poolings[0]


_resnet = dict(weight_layout="torchvision_resnet", poolings=CNN_POOLINGS, has_batch_norm=True)
# Cadene's BN-Inception: Caffe weights that take BGR pixels in 0..255 minus the BGR mean.
_bninception = dict(weight_layout="cadene_bninception", poolings=CNN_POOLINGS,
                    has_batch_norm=True, channel_order="BGR", pixel_scale=1.0,
                    mean=(104.0, 117.0, 128.0), std=(1.0, 1.0, 1.0))
# timm's augreg ViTs are trained on inputs scaled to [-1, 1]; bicubic as in DML ViT recipes.
_vit = dict(weight_layout="timm_vit", poolings=TOKEN_POOLINGS, has_batch_norm=False,
            takes_platform=True, interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
_tiny = dict(image_size=64, resize_size=72, default_embedding_dim=64)

BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec(ResNet, feature_dim=2048, default_embedding_dim=512, **_resnet),
    "bninception": BackboneSpec(BNInception, feature_dim=1024, default_embedding_dim=512,
                                **_bninception),
    "vit_s16": BackboneSpec(VisionTransformer, feature_dim=384, default_embedding_dim=384,
                            **_vit),
    "vit_b16": BackboneSpec(functools.partial(VisionTransformer, width=768, num_heads=12),
                            feature_dim=768, default_embedding_dim=768, **_vit),
    # DINO (Caron et al. 2021): the ViT-S/16 network, ImageNet mean/std.
    "dino_vits16": BackboneSpec(VisionTransformer, feature_dim=384, default_embedding_dim=384,
                                **{**_vit, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}),
    # Tiny variants for tests and the CPU demo: same code and weight layouts, narrow, 64 px;
    # ResNet: one block per stage; BN-Inception: one block of each kind (3a: average-pool
    # branch, 3c: reduction, 5b: max-pool branch); ViT: two layers.
    "resnet50_tiny": BackboneSpec(functools.partial(ResNet, stage_sizes=(1, 1, 1, 1), width=8),
                                  feature_dim=256, **_resnet, **_tiny),
    "bninception_tiny": BackboneSpec(
        functools.partial(BNInception, blocks=("3a", "3c", "5b"), width_divisor=8),
        feature_dim=128, **_bninception, **_tiny),
    "vit_tiny": BackboneSpec(functools.partial(VisionTransformer, width=64, depth=2, num_heads=2),
                             feature_dim=64, **_vit, **_tiny),
}


def get_backbone_spec(name: str) -> BackboneSpec:
  """The registered spec of ``name``; a ValueError lists the choices otherwise."""
  if name not in BACKBONES:
    raise ConfigError(f"Unknown backbone {name!r}; choose one of {sorted(BACKBONES)}.")
  return BACKBONES[name]
