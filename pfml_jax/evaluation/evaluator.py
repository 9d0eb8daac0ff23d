"""Retrieval evaluation of a model's variables on a split, sharded over the mesh."""

import dataclasses
from typing import Callable

import jax
import numpy as np

from pfml_jax import data as data_lib
from pfml_jax.data.split import Split
from pfml_jax.evaluation.embedder import Embedder
from pfml_jax.evaluation.extraction import extract_embeddings
from pfml_jax.evaluation.retrieval import retrieval_metrics
from pfml_jax.parallel import mesh as mesh_lib


@dataclasses.dataclass
class Evaluator:
  """Embeds a split in padded batches (split over processes and devices) and scores it.

  ``embed_fn`` (variables replicated, image rows split over the mesh) is jitted once, for
  every evaluation.
  """

  embedder: Embedder
  mesh: jax.sharding.Mesh
  batch_size: int  # global; rounded down to a multiple of the mesh size (at least one row each)
  ks: tuple[int, ...]
  backend: str = "auto"
  nmi: bool = False
  workers: int = 0
  embed_fn: Callable = dataclasses.field(init=False, repr=False)

  def __post_init__(self):
    rows = mesh_lib.batch_sharding(self.mesh)
    self.embed_fn = jax.jit(self.embedder.apply, out_shardings=rows,
                            in_shardings=(mesh_lib.replicated(self.mesh), rows))

  def embed(self, variables: dict, images) -> jax.Array:
    """(B, E) embeddings of this process's image rows, as a global array over the mesh."""
    return self.embed_fn(variables, mesh_lib.global_array(images,
                                                          mesh_lib.batch_sharding(self.mesh)))

  @property
  def global_batch_size(self) -> int:
    """Rows of one call of ``embed_fn``: ``batch_size`` rounded down to a multiple of the
    mesh size, at least one row per device."""
    return max(self.mesh.size, self.batch_size // self.mesh.size * self.mesh.size)

  def embeddings(self, variables: dict, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """(N, E) embeddings and (N,) labels of every image of ``split``, on every process."""
    transform = self.embedder.transform
    batches = data_lib.eval_batches(
        split, batch_size=self.global_batch_size,
        image_size=transform.image_size, resize_size=transform.resize_size,
        interpolation=transform.interpolation, process_index=jax.process_index(),
        process_count=jax.process_count(), workers=self.workers)
    return extract_embeddings(lambda images: self.embed(variables, images), batches,
                              progress=jax.process_index() == 0)

  def __call__(self, variables: dict, split: Split, ks=None) -> dict[str, float]:
    """Retrieval metrics on ``split``: every item queries all the others."""
    embeddings, labels = self.embeddings(variables, split)
    return retrieval_metrics(embeddings, labels, tuple(ks or self.ks),
                             backend=self.backend, nmi=self.nmi)


def make_evaluator(embedder: Embedder, mesh: jax.sharding.Mesh, eval_config,
                   workers: int = 0) -> Evaluator:
  """The evaluator of ``config.eval``."""
  return Evaluator(embedder, mesh, eval_config.batch_size, tuple(eval_config.ks),
                   eval_config.backend, eval_config.nmi, workers)
