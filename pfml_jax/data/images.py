"""Image sources: random access to decoded uint8 RGB images, whatever the storage.

Every source has ``len(source)``, ``source.image(i)`` (a PIL RGB image, for resizing) and
``source[i]`` (the same image as a uint8 (H, W, 3) NumPy array), and ``subset(indices)``.
Grayscale, palette, CMYK, 16-bit and alpha images all come back as 3-channel RGB. EXIF
orientation is not applied (as in torchvision's and timm's loaders).
"""

import concurrent.futures
import dataclasses
import io
import logging
import os
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from PIL import Image
from pfml_jax.user_errors import UserInputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_HIGH_BIT_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 1.0}
# How many offending paths an error message lists.
MAX_LISTED = 10


class ImageSource(Protocol):
  """What the input pipelines need from a split's images."""

  def __len__(self) -> int: ...

  def image(self, index: int) -> Image.Image: ...

  def __getitem__(self, index: int) -> np.ndarray: ...

  def describe(self, index: int) -> str: ...

  def subset(self, indices: np.ndarray) -> "ImageSource": ...


def to_rgb(image: Image.Image) -> Image.Image:
  """The image as 8-bit RGB: grayscale, palette, CMYK, 16-bit and alpha modes converted."""
  if image.mode == "RGB":
    return image
  if image.mode in _HIGH_BIT_MODES:
    pixels = np.asarray(image, dtype=np.float32) * (255.0 / _HIGH_BIT_MODES[image.mode])
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
  return image.convert("RGB")


def decode_image(data: bytes | str | os.PathLike) -> Image.Image:
  """Decodes encoded bytes or a file to a fully loaded RGB PIL image."""
  stream = io.BytesIO(data) if isinstance(data, bytes) else data
  with Image.open(stream) as image:
    image.load()
    return to_rgb(image)


class CorruptImageError(UserInputError, RuntimeError):
  """Raised when images cannot be read; the message lists the first offending ones."""


def _as_array(image: Image.Image) -> np.ndarray:
  return np.asarray(image, dtype=np.uint8)


@dataclasses.dataclass(frozen=True)
class FileImageSource:
  """Images stored as files: ``root/relative_path``."""

  root: str
  relative_paths: tuple[str, ...]

  def __len__(self) -> int:
    return len(self.relative_paths)

  def path(self, index: int) -> str:
    return os.path.join(self.root, self.relative_paths[index])

  def image(self, index: int) -> Image.Image:
    path = self.path(index)
    try:
      return decode_image(path)
    except (OSError, SyntaxError, ValueError) as error:
      raise CorruptImageError(
          f"cannot decode image {path}: {error}. Replace the file, or set "
          "data.skip_corrupt=True to leave every image that does not decode out.") from error

  def __getitem__(self, index: int) -> np.ndarray:
    return _as_array(self.image(index))

  def describe(self, index: int) -> str:
    return self.path(index)

  def subset(self, indices: np.ndarray) -> "FileImageSource":
    return FileImageSource(self.root, tuple(self.relative_paths[i] for i in indices))


@dataclasses.dataclass(frozen=True)
class ArrayImageSource:
  """Images already decoded in memory: a (N, H, W) grayscale or (N, H, W, 3) RGB uint8 array."""

  pixels: np.ndarray
  indices: np.ndarray

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> np.ndarray:
    image = self.pixels[self.indices[index]]
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image

  def image(self, index: int) -> Image.Image:
    return Image.fromarray(self[index])

  def describe(self, index: int) -> str:
    return f"array image {int(self.indices[index])}"

  def subset(self, indices: np.ndarray) -> "ArrayImageSource":
    return ArrayImageSource(self.pixels, self.indices[np.asarray(indices, dtype=np.int64)])


@dataclasses.dataclass(frozen=True)
class EncodedImageSource:
  """Encoded (JPEG/PNG) bytes behind a random-access reader, e.g. tfds ArrayRecord files.

  ``readers[r][record]`` returns a record, ``field`` the key of its image bytes; ``locations``
  holds one (reader, record) pair per image.
  """

  readers: tuple[Sequence, ...]
  field: str
  locations: np.ndarray  # (N, 2) int64
  names: tuple[str, ...]

  def __len__(self) -> int:
    return len(self.locations)

  def image(self, index: int) -> Image.Image:
    reader, record = self.locations[index]
    try:
      return decode_image(self.readers[reader][int(record)][self.field])
    except (OSError, SyntaxError, ValueError) as error:
      raise CorruptImageError(f"cannot decode {self.describe(index)}: {error}") from error

  def __getitem__(self, index: int) -> np.ndarray:
    return _as_array(self.image(index))

  def describe(self, index: int) -> str:
    return self.names[index]

  def subset(self, indices: np.ndarray) -> "EncodedImageSource":
    indices = np.asarray(indices, dtype=np.int64)
    return EncodedImageSource(self.readers, self.field, self.locations[indices],
                              tuple(self.names[i] for i in indices))


def _header_ok(source: ImageSource, index: int) -> bool:
  """Whether a file exists and PIL recognises its header (cheap: no pixel decoding)."""
  if not isinstance(source, FileImageSource):
    return True
  try:
    with Image.open(source.path(index)) as image:
      return image.size[0] > 0 and image.size[1] > 0
  except (OSError, SyntaxError, ValueError):
    return False


def _decodes(source: ImageSource, index: int) -> bool:
  try:
    source.image(index)
    return True
  except (OSError, CorruptImageError, SyntaxError, ValueError):
    return False


VERIFIERS: dict[str, Callable[[ImageSource, int], bool] | None] = {
    "none": None,  # trust the files; a bad one fails when it is first decoded
    "header": _header_ok,  # files exist and have a valid image header (default; fast)
    "decode": _decodes,  # every image decodes fully (slow: a full pass over the data)
}


def find_unreadable(source: ImageSource, verify: str, workers: int = 8) -> np.ndarray:
  """Indices of the images that fail the ``verify`` check ("none", "header" or "decode")."""
  if verify not in VERIFIERS:
    raise ValueError(f"verify={verify!r}: expected one of {sorted(VERIFIERS)}")
  check = VERIFIERS[verify]
  if check is None or len(source) == 0:
    return np.zeros((0,), np.int64)
  with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
    ok = np.fromiter(pool.map(lambda i: check(source, i), range(len(source))), bool,
                     count=len(source))
  return np.flatnonzero(~ok)


def drop_unreadable(source: ImageSource, verify: str, skip: bool, context: str,
                    logger: logging.Logger) -> np.ndarray:
  """The indices of the readable images; fails (or, with ``skip``, logs) on unreadable ones.

  With ``skip`` the "header" check becomes "decode": a truncated JPEG has a valid header, and
  leaving out only the images whose header fails would still stop the run at the first
  decode of a truncated one.
  """
  if skip and verify == "header":
    verify = "decode"
  bad = find_unreadable(source, verify)
  if len(bad) and not skip:
    listed = "\n  ".join(source.describe(int(i)) for i in bad[:MAX_LISTED])
    raise CorruptImageError(
        f"{context}: {len(bad)} image(s) missing or unreadable, first ones:\n  {listed}\n"
        "Restore them from the original archive, or pass skip_corrupt=True to leave them out.")
  if len(bad):
    logger.warning("%s: skipped %d unreadable image(s), e.g. %s", context, len(bad),
                   source.describe(int(bad[0])))
  return np.setdiff1d(np.arange(len(source)), bad)
