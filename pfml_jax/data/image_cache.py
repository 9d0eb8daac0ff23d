"""The decoded-once copy of a split used by the cached input mode.

Every image is decoded once and resized (squashed, antialiased) to ``size`` x ``size`` uint8
RGB; its original height and width are kept. A crop defined on the original image as
fractions of its height and width covers the same content in the squashed copy, so crops keep
the original aspect ratio and area distribution (see ``crops.py``); only detail finer than the
cached resolution is lost.

On disk the copy is a memory-mapped ``.npy`` (plus ``.sizes.npy``) in ``cache_dir``, by
default ``<split.root>/.pfml_cache``; its file name carries a digest of the split's image list,
the size and the filter, so a present file with that name and the right shape is reused.
Splits without a root (the shipped demo set) are cached in memory.
"""

import concurrent.futures
import dataclasses
import hashlib
import logging
import os

import numpy as np

from pfml_jax.data.crops import INTERPOLATIONS
from pfml_jax.data.split import Split

logger = logging.getLogger(__name__)
CACHE_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class ImageCache:
  """(N, size, size, 3) uint8 images and each image's original (height, width)."""

  images: np.ndarray
  heights: np.ndarray
  widths: np.ndarray
  path: str | None = None


def cache_name(split: Split, size: int, interpolation: str) -> str:
  digest = hashlib.sha256("\n".join(
      [str(CACHE_FORMAT), split.dataset, split.split, str(size), interpolation, *split.keys]
  ).encode()).hexdigest()[:16]
  return f"{split.dataset}-{split.split}-{size}px-{interpolation}-{digest}"


def _load_resized(split: Split, index: int, size: int, resample: int
                  ) -> tuple[np.ndarray, int, int]:
  image = split.images.image(index)
  width, height = image.size
  if image.size != (size, size):
    image = image.resize((size, size), resample)
  return np.asarray(image, dtype=np.uint8), height, width


def _fill(split: Split, images: np.ndarray, size: int, interpolation: str,
          workers: int) -> np.ndarray:
  """Decodes every image into ``images``; returns (N, 2) original heights and widths."""
  resample = INTERPOLATIONS[interpolation][0]
  sizes = np.zeros((len(split), 2), np.int32)

  def load(index: int) -> None:
    images[index], sizes[index, 0], sizes[index, 1] = _load_resized(split, index, size,
                                                                     resample)

  with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
    list(pool.map(load, range(len(split))))  # list(): raise the first decoding error here
  return sizes


def _valid(path: str, count: int, size: int) -> bool:
  try:
    images = np.load(path + ".npy", mmap_mode="r")
    sizes = np.load(path + ".sizes.npy")
  except (OSError, ValueError):
    return False
  return images.shape == (count, size, size, 3) and sizes.shape == (count, 2)


def build_image_cache(split: Split, size: int, interpolation: str = "bicubic",
                      cache_dir: str | None = None, workers: int = 8) -> ImageCache:
  """The split decoded at ``size`` x ``size``: loaded from disk when valid, else built.

  Args:
    split: the split to cache.
    size: side of the cached square images.
    interpolation: "bilinear" or "bicubic" filter of the one-time resize.
    cache_dir: folder for the memory-mapped file; default ``<split.root>/.pfml_cache``;
      "" keeps the cache in memory only.
    workers: decoding threads.
  """
  if interpolation not in INTERPOLATIONS:
    raise ValueError(f"interpolation={interpolation!r}: expected one of {sorted(INTERPOLATIONS)}")
  if cache_dir is None:
    cache_dir = os.path.join(split.root, ".pfml_cache") if split.root else ""
  path = os.path.join(cache_dir, cache_name(split, size, interpolation)) if cache_dir else ""
  if path and not _valid(path, len(split), size):
    try:
      _write(split, path, size, interpolation, workers)
    except OSError as error:
      logger.warning("cannot write the image cache in %s (%s): keeping it in memory",
                     cache_dir, error)
      path = ""
  if not path:
    images = np.zeros((len(split), size, size, 3), np.uint8)
    sizes = _fill(split, images, size, interpolation, workers)
    return ImageCache(images, sizes[:, 0], sizes[:, 1])
  sizes = np.load(path + ".sizes.npy")
  return ImageCache(np.load(path + ".npy", mmap_mode="r"), sizes[:, 0], sizes[:, 1], path)


def _write(split: Split, path: str, size: int, interpolation: str, workers: int) -> None:
  """Decodes the split into ``path``.npy / .sizes.npy; the images file appears last."""
  logger.info("decoding %d images once into %s.npy", len(split), path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  temporary = f"{path}.{os.getpid()}.tmp"
  images = np.lib.format.open_memmap(temporary + ".npy", mode="w+", dtype=np.uint8,
                                     shape=(len(split), size, size, 3))
  sizes = _fill(split, images, size, interpolation, workers)
  images.flush()
  del images
  np.save(temporary + ".sizes.npy", sizes)
  os.replace(temporary + ".sizes.npy", path + ".sizes.npy")
  os.replace(temporary + ".npy", path + ".npy")
