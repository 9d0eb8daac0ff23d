"""Embeddings of a folder of images, or of a split of the run's dataset, by a trained model.

The images get exactly the model's evaluation transform and go through the evaluation's own
``Evaluator``: padded batches split over every local device, a progress bar, the same jitted
model call, so a folder holding a split's images gets the embeddings evaluation computes.
"""

import ml_collections
import numpy as np

from pfml_jax import data as data_lib
from pfml_jax.data.run_splits import split_seed
from pfml_jax.data.split import Split
from pfml_jax.evaluation.evaluator import make_evaluator
from pfml_jax.evaluation.trained_model import TrainedModel
from pfml_jax.inference import embedding_set
from pfml_jax.inference.image_folder_input import UNLABELLED, image_split
from pfml_jax.parallel import mesh as mesh_lib
from pfml_jax.settings import derived
from pfml_jax.user_errors import UserInputError


def inference_mesh():
  """Every device of this host (our choice: the run's ``mesh.data`` may name devices that the
  machine embedding with it lacks, and embedding needs no particular mesh)."""
  return mesh_lib.make_mesh(ml_collections.ConfigDict({"data": -1}))


def embed_split(trained: TrainedModel, split: Split, batch_size: int | None = None,
                workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(N, E) float32 L2-normalised embeddings and (N,) labels of ``split``, in its order."""
  eval_config = ml_collections.ConfigDict(trained.config.eval.to_dict())
  if batch_size is not None:
    if batch_size < 1:
      raise UserInputError(f"--batch_size={batch_size}: must be at least 1.")
    eval_config.batch_size = batch_size
  evaluator = make_evaluator(trained.embedder, inference_mesh(), eval_config, workers)
  return evaluator.embeddings(trained.variables, split)


def run_split(trained: TrainedModel, name: str, data_root: str | None = None) -> Split:
  """Split ``name`` (train | val | test) of the run's dataset, as training read it."""
  config = trained.config
  if name not in ("train", "val", "test"):
    raise UserInputError(f"--split={name}: choose train, val or test.")
  val = derived(config).validation_classes
  if name == "val" and val <= 0:
    raise UserInputError("--split=val: this run has no validation classes (eval.protocol "
                         f"{config.eval.protocol!r}); use --split=test or --split=train.")
  return data_lib.read_split(config.data.name, data_root or config.data.root, name,
                             val_classes=val, seed=split_seed(config),
                             skip_corrupt=config.data.skip_corrupt)


def embed(trained: TrainedModel, out: str, *, images: str | None = None,
          split: str | None = None, data_root: str | None = None,
          skip_unreadable: bool = False, batch_size: int | None = None,
          workers: int = 0) -> str:
  """Embeds ``images`` (a file or folder) or the run's ``split``; writes an embedding set.

  Returns the stem of ``<stem>.npy``, ``.labels.npy``, ``.paths.txt`` and ``.model.json``.
  """
  if (images is None) == (split is None):
    raise UserInputError("give exactly one of --images=FILE_OR_DIR and --split=train|val|test.")
  if images is not None:
    source = image_split(images, skip_unreadable)
  else:
    source = run_split(trained, split, data_root)
  embeddings, labels = embed_split(trained, source, batch_size, workers)
  if images is not None:
    labels = np.full_like(labels, UNLABELLED)
  paths = [source.images.describe(i) for i in range(len(source))]
  return embedding_set.save_embedding_set(out, embeddings, labels, paths,
                                          embedding_set.model_fingerprint(trained))
