"""The embedding model of a config, with the evaluation transform its inputs get."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from pfml_jax.models import BACKBONES, make_embedding_model


@dataclasses.dataclass(frozen=True)
class EvalTransform:
  """Resize the shorter side to ``resize_size``, centre-crop ``image_size``, uint8 RGB."""

  image_size: int
  resize_size: int
  interpolation: str


@dataclasses.dataclass(frozen=True)
class Embedder:
  """A built embedding model: images (B, S, S, 3) uint8 -> (B, E) float32 embeddings,
  normalised as ``model.embedding_norm`` says (unit rows by default)."""

  model: nn.Module
  transform: EvalTransform
  embedding_dim: int

  @property
  def image_size(self) -> int:
    return self.transform.image_size

  def init_variables(self, rng: jax.Array) -> dict:
    return self.model.init(rng, self.example_images(), train=False)

  def example_images(self, batch: int = 1) -> jax.Array:
    return jnp.zeros((batch, self.image_size, self.image_size, 3), jnp.uint8)

  def apply(self, variables: dict, images: jax.Array) -> jax.Array:
    return self.model.apply(variables, images, train=False)


def build_embedder(model_config: ml_collections.ConfigDict,
                   platform: str | None = None) -> Embedder:
  """The model of ``config.model`` for ``platform`` (None: the default device's) and its
  evaluation transform."""
  spec = BACKBONES[model_config.backbone]
  model = make_embedding_model(model_config.backbone, model_config.embedding_dim or None,
                               model_config.pooling or None, frozen_bn=model_config.frozen_bn,
                               dtype=jnp.dtype(model_config.dtype),
                               head_init=model_config.head_init,
                               embedding_norm=model_config.embedding_norm, platform=platform,
                               **model_config.backbone_kwargs)
  transform = EvalTransform(spec.image_size, model_config.eval_resize or spec.resize_size,
                            spec.interpolation)
  images = jnp.zeros((1, spec.image_size, spec.image_size, 3), jnp.uint8)
  embedding_dim = jax.eval_shape(
      lambda rng: model.init_with_output(rng, images, train=False)[0],
      jax.random.key(0)).shape[-1]
  return Embedder(model, transform, embedding_dim)
