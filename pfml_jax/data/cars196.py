"""Cars-196 from cars_annos.mat: numeric class ids 1-98 train, 99-196 test.

The split follows the numeric class id in the annotations, never sorted folder names, and
ignores the annotations' per-image ``test`` flag.
"""

import os

import numpy as np
import scipy.io

from pfml_jax.data.images import FileImageSource
from pfml_jax.data.layout_checks import (check_full_copy, find_dataset_dir, layout_error,
                                         require_files)
from pfml_jax.data.split import Partition

LAYOUT = """  cars196/                           <- root (any name; or its parent named cars196)
    cars_annos.mat                   struct array `annotations` (relative_im_path
                                     'car_ims/000001.jpg', bbox_x1..bbox_y2, class 1..196,
                                     test) and cell array `class_names`
    car_ims/000001.jpg ... 016185.jpg"""
FULL_IMAGES = 16_185
EXPECTED = {"train": (8_054, 98), "test": (8_131, 98)}
FIRST_TEST_CLASS = 99


def _field(annotations: np.ndarray, name: str, path: str) -> np.ndarray:
  if annotations.dtype.names is None or name not in annotations.dtype.names:
    found = annotations.dtype.names or ()
    raise layout_error(path, f"`annotations` has no field {name!r} (fields: {list(found)})",
                       LAYOUT)
  return np.atleast_1d(annotations[name])


def read_cars196(root: str) -> dict[str, Partition]:
  """The train (classes 1-98) and test (99-196) partitions of Cars-196."""
  root = find_dataset_dir(root, "cars_annos.mat", ["cars196"], LAYOUT)
  path = os.path.join(root, "cars_annos.mat")
  try:
    mat = scipy.io.loadmat(path, squeeze_me=True)
  except (ValueError, TypeError, OSError) as error:
    raise layout_error(path, f"not a readable MATLAB file ({error})", LAYOUT) from error
  if "annotations" not in mat:
    raise layout_error(path, "no variable `annotations`", LAYOUT)
  annotations = np.atleast_1d(mat["annotations"])
  relative = [str(p) for p in _field(annotations, "relative_im_path", path)]
  class_ids = _field(annotations, "class", path).astype(np.int64)
  bad = np.flatnonzero((class_ids < 1) | (class_ids > 196))
  if len(bad):
    raise layout_error(path, f"annotation {bad[0] + 1}: class {class_ids[bad[0]]} not in 1..196",
                       LAYOUT)
  names = {c: f"class_{c:03d}" for c in range(1, 197)}
  if "class_names" in mat:
    names.update({i + 1: str(n) for i, n in enumerate(np.atleast_1d(mat["class_names"]))})
  require_files(root, relative, LAYOUT)
  is_test = class_ids >= FIRST_TEST_CLASS
  parts = {name: np.flatnonzero(mask) for name, mask in (("train", ~is_test), ("test", is_test))}
  if len(relative) == FULL_IMAGES:
    check_full_copy("Cars-196", {k: class_ids[v] for k, v in parts.items()}, EXPECTED)
  source = FileImageSource(root, tuple(relative))
  keys = tuple(os.path.splitext(os.path.basename(p))[0] for p in relative)
  return {name: Partition(source, class_ids, names, keys).subset(index)
          for name, index in parts.items()}
