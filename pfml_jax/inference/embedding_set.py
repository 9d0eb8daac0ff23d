"""An embedded gallery on disk, with the identity of the model that made it.

``<stem>.npy`` and ``<stem>.labels.npy`` are ``save_embeddings``' pair (labels -1 for images
without a class); ``<stem>.paths.txt`` names each row's image, one per line;
``<stem>.model.json`` is the model's fingerprint: run, checkpoint step, SHA-256 of the weights
and of the model config, embedding dimension and evaluation transform. ``search`` embeds its
queries with a model whose fingerprint must match the gallery's.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import jax
import numpy as np

from pfml_jax.evaluation.extraction import embedding_paths, load_embeddings, save_embeddings
from pfml_jax.evaluation.trained_model import TrainedModel
from pfml_jax.user_errors import MissingFileError, UserInputError


def _stem(path: str) -> str:
  return embedding_paths(path)[0][:-len(".npy")]


def sidecar_paths(path: str) -> tuple[str, str]:
  """(``<stem>.paths.txt``, ``<stem>.model.json``) for a stem given with or without ``.npy``."""
  stem = _stem(path)
  return stem + ".paths.txt", stem + ".model.json"


def weights_sha256(variables: dict) -> str:
  """SHA-256 over every array of ``variables`` with its flax path, dtype and shape."""
  digest = hashlib.sha256()
  for path, leaf in sorted(jax.tree_util.tree_leaves_with_path(variables),
                           key=lambda item: jax.tree_util.keystr(item[0])):
    array = np.ascontiguousarray(np.asarray(leaf))
    digest.update(f"{jax.tree_util.keystr(path)}|{array.dtype}|{array.shape}|".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def model_fingerprint(trained: TrainedModel) -> dict:
  """What identifies the embedding function of a trained model (JSON-serialisable)."""
  model_config = json.dumps(trained.config.model.to_dict(), sort_keys=True, default=str)
  return {"workdir": str(Path(trained.workdir).resolve()), "step": int(trained.step),
          "weights_sha256": weights_sha256(trained.variables),
          "model_config_sha256": hashlib.sha256(model_config.encode()).hexdigest(),
          "backbone": trained.config.model.backbone,
          "embedding_dim": int(trained.embedder.embedding_dim),
          "transform": dataclasses.asdict(trained.embedder.transform)}


def describe(fingerprint: dict) -> str:
  return (f"{fingerprint['workdir']} step {fingerprint['step']} (weights "
          f"{fingerprint['weights_sha256'][:12]}, {fingerprint['embedding_dim']}-d)")


@dataclasses.dataclass(frozen=True)
class EmbeddingSet:
  """Saved embeddings with their labels, image paths and model fingerprint."""

  stem: str
  embeddings: np.ndarray  # (N, E) float32
  labels: np.ndarray  # (N,) int32, -1 = no class
  paths: tuple[str, ...]
  model: dict

  def check_made_by(self, model: dict) -> None:
    """Raises a UserInputError unless ``model`` (a fingerprint) made these embeddings."""
    if model["embedding_dim"] != self.embeddings.shape[1]:
      raise UserInputError(
          f"mismatched embedding sizes: gallery {self.stem} holds "
          f"{self.embeddings.shape[1]}-d embeddings but the model of {describe(model)} makes "
          f"{model['embedding_dim']}-d ones. Search with the model that embedded the gallery "
          f"({describe(self.model)}), or embed the gallery again with this one.")
    same = all(self.model.get(key) == model[key]
               for key in ("weights_sha256", "model_config_sha256"))
    if not same:
      raise UserInputError(
          f"gallery {self.stem} was embedded by another model: {describe(self.model)}, not "
          f"{describe(model)}. Pass --workdir={self.model['workdir']} "
          f"--checkpoint={self.model['step']}, or embed the gallery again with this model.")


def save_embedding_set(path: str, embeddings, labels, paths, model: dict) -> str:
  """Writes the four files of an embedding set; returns its stem."""
  paths = tuple(str(p) for p in paths)
  if len(paths) != len(embeddings):
    raise ValueError(f"{len(paths)} paths for {len(embeddings)} embeddings.")
  if any("\n" in p for p in paths):
    raise UserInputError("an image path contains a line break; rename the file.")
  save_embeddings(path, embeddings, labels)
  for target, text in zip(sidecar_paths(path), ("".join(p + "\n" for p in paths),
                                                json.dumps(model, indent=1) + "\n")):
    with open(target + ".partial", "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(target + ".partial", target)
  return _stem(path)


def load_embedding_set(path: str, flag: str = "--gallery") -> EmbeddingSet:
  """The embedding set written by ``save_embedding_set`` (``embed``), checked for consistency."""
  stem = _stem(path)
  paths_file, model_file = sidecar_paths(path)
  for name in (*embedding_paths(path), paths_file, model_file):
    if not os.path.isfile(name):
      raise MissingFileError(
          f"{flag}={path}: no file {name}. A gallery is the <stem>.npy, .labels.npy, "
          ".paths.txt and .model.json that `python -m pfml_jax.inference embed "
          "--out=<stem>` writes; embed the gallery images first.")
  try:
    embeddings, labels = load_embeddings(path)
  except ValueError as error:
    raise UserInputError(f"{flag}={path}: {error}") from error
  with open(paths_file, encoding="utf-8") as f:
    paths = tuple(line.rstrip("\n") for line in f)
  with open(model_file, encoding="utf-8") as f:
    model = json.load(f)
  if len(paths) != len(embeddings):
    raise UserInputError(f"{flag}={path}: {paths_file} names {len(paths)} images but "
                         f"{stem}.npy holds {len(embeddings)} rows; embed the gallery again.")
  if model.get("embedding_dim") != embeddings.shape[1]:
    raise UserInputError(
        f"mismatched embedding sizes: {stem}.npy holds {embeddings.shape[1]}-d embeddings but "
        f"{model_file} says its model makes {model.get('embedding_dim')}-d ones; the files "
        "come from different runs: embed the gallery again.")
  return EmbeddingSet(stem, embeddings, labels, paths, model)
