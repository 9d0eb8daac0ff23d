"""Stanford Online Products from Ebay_train.txt / Ebay_test.txt (already the DML split)."""

import os

import numpy as np

from pfml_jax.data.images import FileImageSource
from pfml_jax.data.layout_checks import (check_full_copy, find_dataset_dir, malformed,
                                         numbered_lines, require_files)
from pfml_jax.data.split import Partition

LAYOUT = """  Stanford_Online_Products/           <- root (or its parent)
    Ebay_train.txt                   header "image_id class_id super_class_id path", then
    Ebay_test.txt                    "<image_id> <class_id> <super_class_id> <path>", 1-based ids
    <super>_final/*.JPG              e.g. bicycle_final/111085122871_0.JPG"""
HEADER = "image_id class_id super_class_id path"
FILES = {"train": "Ebay_train.txt", "test": "Ebay_test.txt"}
EXPECTED = {"train": (59_551, 11_318), "test": (60_502, 11_316)}


def _read_list(root: str, name: str) -> tuple[list[str], np.ndarray]:
  path = os.path.join(root, name)
  relative, class_ids = [], []
  for number, line in numbered_lines(path, LAYOUT):
    if number == 1:
      if line.split() != HEADER.split():
        raise malformed(path, number, line, HEADER, LAYOUT)
      continue
    fields = line.split()
    if len(fields) != 4 or not all(f.isdigit() for f in fields[:3]):
      raise malformed(path, number, line, "<image_id> <class_id> <super_class_id> <path>", LAYOUT)
    class_ids.append(int(fields[1]))
    relative.append(fields[3])
  return relative, np.array(class_ids, np.int64)


def read_sop(root: str) -> dict[str, Partition]:
  """The train (Ebay_train.txt) and test (Ebay_test.txt) partitions of SOP."""
  root = find_dataset_dir(root, FILES["train"], ["Stanford_Online_Products"], LAYOUT)
  lists = {part: _read_list(root, name) for part, name in FILES.items()}
  for relative, _ in lists.values():
    require_files(root, relative, LAYOUT)
  if any(len(lists[p][0]) == EXPECTED[p][0] for p in lists):
    check_full_copy("Stanford Online Products", {p: ids for p, (_, ids) in lists.items()},
                    EXPECTED)
  partitions = {}
  for part, (relative, class_ids) in lists.items():
    names = {int(c): f"{relative[i].split('_final/')[0]}_{c}"
             for c, i in zip(*np.unique(class_ids, return_index=True))}
    partitions[part] = Partition(FileImageSource(root, tuple(relative)), class_ids, names,
                                 tuple(relative))
  return partitions
