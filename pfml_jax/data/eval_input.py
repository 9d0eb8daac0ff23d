"""Evaluation input: resize (shorter side) + centre crop, static-shape padded batches.

Batch b covers the split's images b * B .. (b + 1) * B - 1 in order (B = global batch size);
process p of P receives rows [p * B / P, (p + 1) * B / P) of it. Rows past the end are padding:
zero images, ``mask`` False, ``labels`` and ``index`` -1. Every process yields the same number
of batches (``len(eval_batches(...))``), as SPMD evaluation needs.
"""

import dataclasses
import math
from collections.abc import Iterator

import grain
import numpy as np
from PIL import Image

from pfml_jax import checks
from pfml_jax.data.crops import INTERPOLATIONS
from pfml_jax.data.grain_pipeline import prefetching_iterator
from pfml_jax.data.split import Split


def resize_center_crop(image: Image.Image, resize_size: int, image_size: int,
                       interpolation: str) -> np.ndarray:
  """torchvision's Resize(resize_size) + CenterCrop(image_size) in one antialiased resample."""
  width, height = image.size
  short, long = sorted((width, height))
  new_long = int(resize_size * long / short)
  new_width, new_height = (resize_size, new_long) if width <= height else (new_long, resize_size)
  top = int(round((new_height - image_size) / 2.0))
  left = int(round((new_width - image_size) / 2.0))
  sx, sy = width / new_width, height / new_height
  box = (left * sx, top * sy, (left + image_size) * sx, (top + image_size) * sy)
  resized = image.resize((image_size, image_size), INTERPOLATIONS[interpolation], box=box)
  return np.asarray(resized, dtype=np.uint8)


@dataclasses.dataclass(frozen=True)
class EvalBatchLoader:
  """grain map function: batch number -> this process's padded rows."""

  split: Split
  batch_size: int
  rows: tuple[int, int]
  image_size: int
  resize_size: int
  interpolation: str

  def __call__(self, number: int) -> dict[str, np.ndarray]:
    start, stop = self.rows
    index = number * self.batch_size + np.arange(start, stop)
    valid = index < len(self.split)
    images = np.zeros((stop - start, self.image_size, self.image_size, 3), np.uint8)
    for row in np.flatnonzero(valid):
      images[row] = resize_center_crop(self.split.images.image(int(index[row])),
                                       self.resize_size, self.image_size, self.interpolation)
    labels = np.where(valid, self.split.labels[np.minimum(index, len(self.split) - 1)], -1)
    return {"images": images, "labels": labels.astype(np.int32), "mask": valid,
            "index": np.where(valid, index, -1).astype(np.int32)}


@dataclasses.dataclass(frozen=True)
class EvalInput:
  """Iterable over this process's part of every evaluation batch; ``len`` = batch count."""

  loader: EvalBatchLoader
  workers: int
  threads: int

  def __len__(self) -> int:
    return math.ceil(len(self.loader.split) / self.loader.batch_size)

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    dataset = grain.MapDataset.range(len(self)).map(self.loader)
    return prefetching_iterator(dataset, self.threads, self.workers)


def eval_batches(split: Split, *, batch_size: int, image_size: int, resize_size: int,
                 interpolation: str = "bilinear", process_index: int = 0,
                 process_count: int = 1, workers: int = 0, threads: int = 4) -> EvalInput:
  """Padded evaluation batches of ``split`` (global ``batch_size``, split over processes).

  Nine parameters on purpose: the split, the evaluation transform (batch, crop side, resize
  side, filter), this process's share (index, count) and the decoding (workers, threads), all
  keywords that its one caller, the evaluator, passes by name.

  Yields ``{"images": uint8 (B_local, S, S, 3), "labels": int32, "mask": bool,
  "index": int32}`` with ``index`` the row of the image in the split.
  """
  checks.interpolation(interpolation)
  if resize_size < image_size:
    raise ValueError(f"resize_size={resize_size} must be >= image_size={image_size}.")
  local = checks.divides(batch_size, process_count)
  loader = EvalBatchLoader(split, batch_size, (process_index * local, (process_index + 1) * local),
                           image_size, resize_size, interpolation)
  return EvalInput(loader, workers, threads)
