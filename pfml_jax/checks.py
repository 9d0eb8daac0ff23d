"""Checks of values that several layers take (config validation, data pipelines, losses).

Each raises a ``ConfigError`` (a ``ValueError``) that names the value and what it must be.
"""

import math

from pfml_jax.user_errors import ConfigError

INTERPOLATIONS = ("bilinear", "bicubic")


def positive_number(value, what: str) -> float:
  """``value`` as a float; it must be a finite number > 0."""
  if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                     and value > 0):
    raise ConfigError(f"{what} must be a finite number > 0, got {value!r}.")
  return float(value)


def interpolation(name: str) -> str:
  if name not in INTERPOLATIONS:
    raise ConfigError(f"interpolation={name!r}: expected one of {sorted(INTERPOLATIONS)}")
  return name


def divides(batch_size: int, parts: int, what: str = "processes") -> int:
  """``batch_size // parts``; the batch must split evenly."""
  if parts <= 0 or batch_size % parts:
    raise ConfigError(f"batch_size={batch_size} must divide evenly over {parts} {what}.")
  return batch_size // parts


def crop_ranges(scale, ratio) -> tuple[tuple[float, float], tuple[float, float]]:
  """RandomResizedCrop's (scale, ratio) ranges: 0 < low <= high (<= 1 for scale)."""
  if not 0 < scale[0] <= scale[1] <= 1:
    raise ConfigError(f"crop scale must be (low, high) with 0 < low <= high <= 1, got {scale}.")
  if not 0 < ratio[0] <= ratio[1]:
    raise ConfigError(f"crop ratio must be (low, high) with 0 < low <= high, got {ratio}.")
  return (float(scale[0]), float(scale[1])), (float(ratio[0]), float(ratio[1]))
