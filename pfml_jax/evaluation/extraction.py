"""Embeddings of a whole evaluation split, gathered to the host; saved and loaded as .npy.

Batches are static-shape and padded, as the data layer makes them:
``{"images": (B, ...), "labels": (B,), "mask": (B,)}`` with mask False (label -1) on padding
rows. Each process iterates its own batches; padding rows are dropped; in a multi-host run the
processes' rows are gathered so every process returns the whole split, process 0's rows first.

On disk an embedding set is two files: ``<stem>.npy`` (float32 (N, E)) and
``<stem>.labels.npy`` (int32 (N,)), row i of one belonging to row i of the other.
"""

import itertools
import os
from typing import Any, Callable, Iterable, Mapping

import jax
import numpy as np
import tqdm
from jax.experimental import multihost_utils


def extract_embeddings(embed_fn: Callable[[Any], Any], batches: Iterable[Mapping[str, Any]], *,
                       num_batches: int | None = None,
                       progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Runs ``embed_fn`` over every batch and keeps the real (unmasked) rows.

  Args:
    embed_fn: images (B, ...) -> (B, E) embeddings; typically a jitted model call. Its output
      may be a host array, a local device array, or a global ``jax.Array`` sharded over
      processes (then each process keeps the rows of its own batch).
    batches: iterable of padded batches (see the module docstring).
    num_batches: stop after this many batches (also sizes the progress bar); default: until
      ``batches`` ends (its ``len()`` then sizes the bar, if it has one).
    progress: show a tqdm bar with ETA (process 0 only).
  Returns:
    (N, E) float32 embeddings and (N,) int32 labels of the whole split, on every process.
  """
  if num_batches is not None:
    batches = itertools.islice(batches, num_batches)
  total = num_batches if num_batches is not None else getattr(batches, "__len__", lambda: None)()
  kept_embeddings, kept_labels = [], []
  pending = None  # the previous batch's (output, batch): fetch it once the next one is queued
  bar = tqdm.tqdm(batches, total=total, desc="embedding", unit="batch",
                  disable=not progress or jax.process_index() != 0)
  for batch in bar:
    missing = {"images", "labels", "mask"} - set(batch)
    if missing:
      raise ValueError(f"An evaluation batch lacks {sorted(missing)}; batches must be dicts "
                       "with 'images', 'labels' and 'mask' (False on padding rows).")
    output = embed_fn(batch["images"])
    if pending is not None:
      _keep_rows(*pending, kept_embeddings, kept_labels)
    pending = (output, batch)
  if pending is None:
    raise ValueError("extract_embeddings got no batches; check that the evaluation split is "
                     "not empty and that its iterator was not already consumed.")
  _keep_rows(*pending, kept_embeddings, kept_labels)
  embeddings = np.concatenate(kept_embeddings)
  labels = np.concatenate(kept_labels)
  if jax.process_count() > 1:
    embeddings, labels = gather_processes(embeddings, labels)
  return embeddings, labels


def _keep_rows(output, batch: Mapping[str, Any], kept_embeddings: list, kept_labels: list):
  embeddings = _host_rows(output)
  labels = np.asarray(batch["labels"])
  mask = np.asarray(batch["mask"], bool)
  if embeddings.ndim != 2 or embeddings.shape[0] != mask.shape[0]:
    raise ValueError(f"embed_fn returned shape {embeddings.shape} for a batch of "
                     f"{mask.shape[0]} rows; it must return one (E,) embedding per row.")
  if (labels[mask] < 0).any():
    raise ValueError("A batch has rows with mask True but a negative label; the data layer "
                     "must mark padding rows with mask False and label -1.")
  kept_embeddings.append(embeddings[mask])
  kept_labels.append(labels[mask].astype(np.int32))


def _host_rows(output) -> np.ndarray:
  """This process's rows of ``output`` as a float32 host array."""
  if isinstance(output, jax.Array) and not output.is_fully_addressable:
    sharding = output.sharding
    if not isinstance(sharding, jax.NamedSharding):
      raise ValueError(f"embed_fn returned a multi-process array with {type(sharding).__name__}; "
                       "return one with a NamedSharding (or a process-local array).")
    output = multihost_utils.global_array_to_host_local_array(output, sharding.mesh,
                                                              sharding.spec)
  return np.asarray(output, np.float32)


def gather_processes(embeddings: np.ndarray,
                     labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Every process's rows, in process order, on every process (counts may differ)."""
  counts = multihost_utils.process_allgather(np.array([len(labels)])).reshape(-1)
  room = int(counts.max())
  pad = room - len(labels)
  all_embeddings = multihost_utils.process_allgather(np.pad(embeddings, ((0, pad), (0, 0))))
  all_labels = multihost_utils.process_allgather(np.pad(labels, (0, pad)))
  all_embeddings = np.asarray(all_embeddings).reshape(len(counts), room, -1)
  all_labels = np.asarray(all_labels).reshape(len(counts), room)
  return (np.concatenate([all_embeddings[p, :n] for p, n in enumerate(counts)]),
          np.concatenate([all_labels[p, :n] for p, n in enumerate(counts)]))


def embedding_paths(path: str) -> tuple[str, str]:
  """(``<stem>.npy``, ``<stem>.labels.npy``) for a path given with or without ``.npy``."""
  stem = path[:-len(".npy")] if path.endswith(".npy") else path
  return stem + ".npy", stem + ".labels.npy"


def save_embeddings(path: str, embeddings, labels) -> tuple[str, str]:
  """Writes ``<stem>.npy`` and ``<stem>.labels.npy`` (call it on one process); returns both."""
  embeddings = np.asarray(embeddings, np.float32)
  labels = np.asarray(labels)
  if embeddings.ndim != 2 or labels.shape != (embeddings.shape[0],):
    raise ValueError(f"save_embeddings needs (N, E) embeddings and (N,) labels; got "
                     f"{embeddings.shape} and {labels.shape}.")
  paths = embedding_paths(path)
  os.makedirs(os.path.dirname(os.path.abspath(paths[0])), exist_ok=True)
  for target, array in zip(paths, (embeddings, labels.astype(np.int32))):
    partial = target + ".partial"
    with open(partial, "wb") as f:
      np.save(f, array)
    os.replace(partial, target)  # readers never see a half-written file
  return paths


def load_embeddings(path: str, labels_path: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(N, E) float32 embeddings and (N,) int32 labels written by ``save_embeddings``.

  Args:
    path: the embeddings file (``<stem>.npy``) or its stem.
    labels_path: the labels file; default ``<stem>.labels.npy``.
  """
  embeddings_path, default_labels_path = embedding_paths(path)
  labels_path = labels_path or default_labels_path
  layout = ("expected <stem>.npy (float32 (N, E) embeddings) next to <stem>.labels.npy (int (N,) "
            "labels), as save_embeddings writes them")
  for name in (embeddings_path, labels_path):
    if not os.path.isfile(name):
      raise FileNotFoundError(f"No file {name}: {layout}.")
  embeddings = np.load(embeddings_path, allow_pickle=False)
  labels = np.load(labels_path, allow_pickle=False)
  if embeddings.ndim != 2 or labels.shape != (embeddings.shape[0],):
    raise ValueError(f"{embeddings_path} has shape {embeddings.shape} and {labels_path} shape "
                     f"{labels.shape}; {layout}.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{labels_path} holds {labels.dtype}, not integer labels; {layout}.")
  return embeddings.astype(np.float32), labels.astype(np.int32)
