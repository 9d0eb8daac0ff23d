"""Small learnable image folders for whole-run tests: each class a colour with noise."""

from pathlib import Path

import numpy as np
from PIL import Image

NUM_CLASSES, PER_CLASS = 12, 6


def write_colour_classes(root: Path, varied_sizes: bool = False) -> Path:
  """``root/class_XX/<i>.jpg``: 12 classes x 6 JPEGs of 40 x 48 pixels (or, with
  ``varied_sizes``, 40 + 4 i by 48 + 2 c)."""
  rng = np.random.default_rng(0)
  for c in range(NUM_CLASSES):
    (root / f"class_{c:02d}").mkdir()
    base = rng.integers(0, 256, 3)
    for i in range(PER_CLASS):
      shape = (40 + 4 * i, 48 + 2 * c, 3) if varied_sizes else (40, 48, 3)
      pixels = np.clip(base + rng.normal(0, 40, shape), 0, 255).astype(np.uint8)
      Image.fromarray(pixels).save(root / f"class_{c:02d}" / f"{i}.jpg")
  return root
