"""RandomResizedCrop + horizontal flip parameters, shared by both training input modes.

The crop is torchvision's ``RandomResizedCrop.get_params``: up to 10 attempts of an area
fraction ~ U(scale) and a log aspect ratio ~ U(log ratio), rounded to whole pixels of the
ORIGINAL image, the first one that fits wins, else a centre crop with the ratio clamped. The
random numbers of a global batch come from (seed, step) alone and are drawn before any image
is seen, so the grain mode (which turns them into boxes after decoding) and the cached mode
(which uses the cached original sizes) crop exactly the same regions, resampled alike
(crop, then antialiased resize, as torchvision), and every process of a
multi-host run draws the same numbers and keeps its own rows.
"""

import dataclasses

import numpy as np
from PIL import Image

from pfml_jax import checks

ATTEMPTS = 10
# Config string -> PIL filter (antialiased when downscaling, as torchvision's on PIL images).
INTERPOLATIONS = {name: getattr(Image, name.upper()) for name in checks.INTERPOLATIONS}


@dataclasses.dataclass(frozen=True)
class CropVariates:
  """Uniform [0, 1) random numbers for a batch of crops (rows can be sliced per process)."""

  area: np.ndarray  # (B, ATTEMPTS)
  log_ratio: np.ndarray  # (B, ATTEMPTS)
  offset: np.ndarray  # (B, ATTEMPTS, 2): top, left
  flip: np.ndarray  # (B,)

  def rows(self, start: int, stop: int) -> "CropVariates":
    return CropVariates(self.area[start:stop], self.log_ratio[start:stop],
                        self.offset[start:stop], self.flip[start:stop])


@dataclasses.dataclass(frozen=True)
class CropBoxes:
  """Integer crop boxes in original-image pixels, and whether to flip each crop."""

  top: np.ndarray
  left: np.ndarray
  height: np.ndarray
  width: np.ndarray
  flip: np.ndarray  # bool

  def normalized(self, heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """(B, 4) float32 (top, left, height, width) as fractions of each original image."""
    return np.stack([self.top / heights, self.left / widths, self.height / heights,
                     self.width / widths], axis=1).astype(np.float32)


def crop_variates(seed: int, step: int, batch_size: int) -> CropVariates:
  """The random numbers of the global batch at ``step``."""
  rng = np.random.default_rng([seed, 0xC809, int(step)])
  return CropVariates(area=rng.random((batch_size, ATTEMPTS)),
                      log_ratio=rng.random((batch_size, ATTEMPTS)),
                      offset=rng.random((batch_size, ATTEMPTS, 2)),
                      flip=rng.random(batch_size))


def crop_boxes(variates: CropVariates, heights: np.ndarray, widths: np.ndarray,
               scale: tuple[float, float], ratio: tuple[float, float],
               flip: bool = True) -> CropBoxes:
  """RandomResizedCrop boxes for images of the given original sizes (vectorised).

  ``flip=False`` mirrors no crop; the flip numbers are drawn either way, so the boxes (and,
  with ``flip=True``, the flips) of a (seed, step) never depend on the switch.
  """
  heights = np.asarray(heights, np.int64)[:, None]
  widths = np.asarray(widths, np.int64)[:, None]
  area = heights * widths * (scale[0] + (scale[1] - scale[0]) * variates.area)
  log_low, log_high = np.log(ratio[0]), np.log(ratio[1])
  aspect = np.exp(log_low + (log_high - log_low) * variates.log_ratio)
  w = np.rint(np.sqrt(area * aspect)).astype(np.int64)
  h = np.rint(np.sqrt(area / aspect)).astype(np.int64)
  fits = (w > 0) & (w <= widths) & (h > 0) & (h <= heights)
  first = np.argmax(fits, axis=1)
  rows = np.arange(len(first))
  found = fits[rows, first]
  h, w = h[rows, first], w[rows, first]
  top = np.floor(variates.offset[rows, first, 0] * (heights[:, 0] - h + 1)).astype(np.int64)
  left = np.floor(variates.offset[rows, first, 1] * (widths[:, 0] - w + 1)).astype(np.int64)
  # Fallback (no attempt fit): the largest centred crop with the ratio clamped into range.
  fh, fw = heights[:, 0], widths[:, 0]
  in_ratio = fw / fh
  fallback_w = np.where(in_ratio > ratio[1], np.rint(fh * ratio[1]), fw).astype(np.int64)
  fallback_h = np.where(in_ratio < ratio[0], np.rint(fw / ratio[0]), fh).astype(np.int64)
  h, w = np.where(found, h, fallback_h), np.where(found, w, fallback_w)
  top = np.where(found, top, (fh - fallback_h) // 2)
  left = np.where(found, left, (fw - fallback_w) // 2)
  return CropBoxes(top, left, h, w, (variates.flip < 0.5) & flip)


def crop_resize_flip(image: Image.Image, top: int, left: int, height: int, width: int,
                     flip: bool, out_size: int, interpolation: str) -> np.ndarray:
  """One crop resized to (out_size, out_size) (antialiased) and optionally mirrored.

  Crop, then resize, as torchvision's ``resized_crop`` on a PIL image: the filter reads only
  the box's pixels (``resize(box=...)`` would read its neighbours too).
  """
  resized = image.crop((left, top, left + width, top + height)).resize(
      (out_size, out_size), INTERPOLATIONS[interpolation])
  pixels = np.asarray(resized, dtype=np.uint8)
  return pixels[:, ::-1] if flip else pixels
