"""CUB-200-2011 from its original archive: classes 1-100 train, 101-200 test.

The dataset's own per-image train/test flags (train_test_split.txt) are not used.
"""

import os

import numpy as np

from pfml_jax.data.images import FileImageSource
from pfml_jax.data.layout_checks import (check_full_copy, find_dataset_dir, layout_error,
                                         malformed, numbered_lines, require_files)
from pfml_jax.data.split import Partition

LAYOUT = """  CUB_200_2011/                      <- root (or its parent)
    images.txt                       "<image_id> <relative path>",
                                     e.g. "1 001.Black_footed_Albatross/<file>.jpg"
    image_class_labels.txt           "<image_id> <class id 1..200>"
    classes.txt                      "<class id> <class name>" (optional: names)
    images/<NNN.Class_name>/*.jpg"""
FULL_IMAGES = 11_788
EXPECTED = {"train": (5_864, 100), "test": (5_924, 100)}
FIRST_TEST_CLASS = 101


def _id_table(path: str, expected: str) -> dict[int, str]:
  table = {}
  for number, line in numbered_lines(path, LAYOUT):
    parts = line.split(maxsplit=1)
    if len(parts) != 2 or not parts[0].isdigit():
      raise malformed(path, number, line, expected, LAYOUT)
    table[int(parts[0])] = parts[1]
  return table


def read_cub200(root: str) -> dict[str, Partition]:
  """The train (classes 1-100) and test (101-200) partitions of CUB-200-2011."""
  root = find_dataset_dir(root, "images.txt", ["CUB_200_2011"], LAYOUT)
  paths = _id_table(os.path.join(root, "images.txt"), "<image_id> <relative path>")
  labels_path = os.path.join(root, "image_class_labels.txt")
  labels = _id_table(labels_path, "<image_id> <class id>")
  unlabelled = sorted(set(paths) - set(labels))
  if unlabelled:
    raise layout_error(labels_path, f"no class for image ids {unlabelled[:10]}", LAYOUT)
  for image_id, value in labels.items():
    if not value.isdigit() or not 1 <= int(value) <= 200:
      raise layout_error(labels_path, f"image {image_id}: class {value!r} not in 1..200",
                         LAYOUT)
  ids = sorted(paths)
  relative = [os.path.join("images", paths[i]) for i in ids]
  class_ids = np.array([int(labels[i]) for i in ids], np.int64)
  names_path = os.path.join(root, "classes.txt")
  names = (_id_table(names_path, "<class id> <class name>") if os.path.isfile(names_path) else {})
  for relative_path, class_id in zip(relative, class_ids):
    names.setdefault(int(class_id), os.path.basename(os.path.dirname(relative_path)))
  require_files(root, relative, LAYOUT)
  is_test = class_ids >= FIRST_TEST_CLASS
  parts = {name: np.flatnonzero(mask) for name, mask in (("train", ~is_test), ("test", is_test))}
  if len(ids) == FULL_IMAGES:
    check_full_copy("CUB-200-2011", {k: class_ids[v] for k, v in parts.items()}, EXPECTED)
  source = FileImageSource(root, tuple(relative))
  keys = tuple(paths[i] for i in ids)
  return {name: Partition(source, class_ids, names, keys).subset(index)
          for name, index in parts.items()}

