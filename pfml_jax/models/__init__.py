"""Backbones (ResNet-50, BN-Inception, ViT-S/16, ViT-B/16, DINO ViT-S/16), the embedding model
and pretrained-weight import."""

from pfml_jax.models.embedding import POOLINGS, EmbeddingModel, make_embedding_model
from pfml_jax.models.pretrained import LAYOUTS, load_pretrained, read_checkpoint
from pfml_jax.models.registry import BACKBONES, BackboneSpec, get_backbone_spec

__all__ = ["BACKBONES", "BackboneSpec", "EmbeddingModel", "LAYOUTS", "POOLINGS",
           "get_backbone_spec", "load_pretrained", "make_embedding_model",
           "read_checkpoint"]
