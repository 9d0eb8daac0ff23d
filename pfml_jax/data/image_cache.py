"""The decoded-once copy of a split used by the cached input mode.

Every image is decoded once into the top-left corner of an R x R uint8 RGB canvas, R =
min(``size``, the split's largest original side) (``size`` None: the largest side). Its aspect
ratio is kept: an image whose longer side exceeds R is downscaled (antialiased, the given
filter) to a longer side of R, every other image is stored at its original pixels, losslessly.
The original and the cached (height, width) of each image are kept; the zero padding of the
canvas is never read by a crop (see ``device_augment.py``).

On disk the copy is a memory-mapped ``.npy`` (plus ``.sizes.npy``) in ``cache_dir``, by
default the user's cache folder ``$XDG_CACHE_HOME/pfml_jax/image_cache`` (``~/.cache/...``
without XDG_CACHE_HOME), never inside the dataset (our choice: a read-only or shared dataset
works, the user's data tree never changes, and every run on the machine shares one copy).
Its file name carries a digest of the dataset folder, the split's image list, the format, the
requested size and the filter, so a present file with that name and the shape its sizes file
implies is reused (without decoding); building it decodes every image twice, once for the
sizes (R depends on the largest) and once into the canvas. Splits without a root (the shipped
demo set), and any split whose cache folder cannot be written, are cached in memory.
"""

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import logging
import os
import socket

import numpy as np

from pfml_jax import checks
from pfml_jax.data.crops import INTERPOLATIONS
from pfml_jax.data.split import Split

logger = logging.getLogger(__name__)
CACHE_FORMAT = 2  # 1: images squashed to size x size


@dataclasses.dataclass(frozen=True)
class ImageCache:
  """(N, R, R, 3) uint8 canvases, each image's original and cached (height, width)."""

  images: np.ndarray
  heights: np.ndarray
  widths: np.ndarray
  cached_heights: np.ndarray
  cached_widths: np.ndarray
  path: str | None = None


def default_cache_dir() -> str:
  """``$XDG_CACHE_HOME/pfml_jax/image_cache``, or ``~/.cache/pfml_jax/image_cache``."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "pfml_jax", "image_cache")


def cache_name(split: Split, size: int, interpolation: str) -> str:
  """The cache's file name for a requested ``size`` (0: original sizes)."""
  digest = hashlib.sha256("\n".join(
      [str(CACHE_FORMAT), os.path.realpath(split.root) if split.root else "", split.dataset,
       split.split, str(size), interpolation, *split.keys]
  ).encode()).hexdigest()[:16]
  return f"{split.dataset}-{split.split}-{size}px-{interpolation}-{digest}"


def cached_size(height: int, width: int, side: int) -> tuple[int, int]:
  """(height, width) of an image in a cache of side ``side``: aspect kept, longer side <= side."""
  longer = max(height, width)
  if longer <= side:
    return height, width
  return max(1, round(height * side / longer)), max(1, round(width * side / longer))


def _original_sizes(split: Split, workers: int) -> np.ndarray:
  """(N, 2) original heights and widths (a first decoding pass)."""
  def size(index: int) -> tuple[int, int]:
    width, height = split.images.image(index).size
    return height, width

  with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
    return np.array(list(pool.map(size, range(len(split)))), np.int32).reshape(-1, 2)


def _side(size: int | None, longest: int) -> int:
  """The canvas side R for a requested ``size`` and the split's largest original side."""
  return min(size, longest) if size else longest


def _canvas_side(split: Split, size: int | None, workers: int) -> int:
  return _side(size, int(_original_sizes(split, workers).max()) if len(split) else 1)


def _fill(split: Split, images: np.ndarray, interpolation: str, workers: int) -> np.ndarray:
  """Decodes every image into the top left of its canvas in ``images``; returns (N, 4)
  original heights, widths, cached heights, widths."""
  resample = INTERPOLATIONS[interpolation]
  side = images.shape[1]
  sizes = np.zeros((len(split), 4), np.int32)

  def load(index: int) -> None:
    image = split.images.image(index)
    width, height = image.size
    rows, cols = cached_size(height, width, side)
    if (rows, cols) != (height, width):
      image = image.resize((cols, rows), resample)
    images[index, :rows, :cols] = np.asarray(image, dtype=np.uint8)
    sizes[index] = height, width, rows, cols

  with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
    list(pool.map(load, range(len(split))))  # list(): raise the first decoding error here
  return sizes


def _valid(path: str, count: int, size: int | None) -> bool:
  try:
    images = np.load(path + ".npy", mmap_mode="r")
    sizes = np.load(path + ".sizes.npy")
  except (OSError, ValueError):
    return False
  if sizes.shape != (count, 4) or not count:
    return False
  side = _side(size, int(sizes[:, :2].max()))
  return images.shape == (count, side, side, 3)


def build_image_cache(split: Split, size: int | None, interpolation: str = "bicubic",
                      cache_dir: str | None = None, workers: int = 8) -> ImageCache:
  """The split decoded once (see the module docstring): loaded from disk when valid, else built.

  Args:
    split: the split to cache.
    size: longest cached side; images up to it keep their original pixels. None: every image
      at its original size. The canvas side R is min(size, the largest original side).
    interpolation: "bilinear" or "bicubic" filter of the one-time downscale.
    cache_dir: folder for the memory-mapped file; default ``default_cache_dir()`` (splits
      with a root); "" keeps the cache in memory only.
    workers: decoding threads.
  """
  checks.interpolation(interpolation)
  if cache_dir is None:
    cache_dir = default_cache_dir() if split.root else ""
  path = cache_name(split, size or 0, interpolation)
  path = os.path.join(cache_dir, path) if cache_dir else ""
  if path and not _valid(path, len(split), size):
    try:
      _write(split, path, _canvas_side(split, size, workers), interpolation, workers)
    except OSError as error:
      logger.warning("cannot write the image cache in %s (%s): keeping it in memory",
                     cache_dir, error)
      path = ""
  if not path:
    side = _canvas_side(split, size, workers)
    images = np.zeros((len(split), side, side, 3), np.uint8)
    sizes = _fill(split, images, interpolation, workers)
    return ImageCache(images, *sizes.T)
  sizes = np.load(path + ".sizes.npy")
  return ImageCache(np.load(path + ".npy", mmap_mode="r"), *sizes.T, path)


def _write(split: Split, path: str, side: int, interpolation: str, workers: int) -> None:
  """Decodes the split into ``path``.npy / .sizes.npy (4 columns, see ``_fill``); the images
  file appears last."""
  logger.info("decoding %d images once into %s.npy", len(split), path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  temporary = f"{path}.{socket.gethostname()}.{os.getpid()}.tmp"  # hosts may share the folder
  try:
    images = np.lib.format.open_memmap(temporary + ".npy", mode="w+", dtype=np.uint8,
                                       shape=(len(split), side, side, 3))
    sizes = _fill(split, images, interpolation, workers)
    images.flush()
    del images
    np.save(temporary + ".sizes.npy", sizes)
  except BaseException:  # an image that does not decode, a full disk, Ctrl-C: no partial file
    for suffix in (".npy", ".sizes.npy"):
      with contextlib.suppress(FileNotFoundError):
        os.remove(temporary + suffix)
    raise
  os.replace(temporary + ".sizes.npy", path + ".sizes.npy")
  os.replace(temporary + ".npy", path + ".npy")
