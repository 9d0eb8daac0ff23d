"""Users' own data: ``root/<class_name>/*.{jpg,jpeg,png}``, split class-disjointly.

Rule: the class folders sorted by name; the first half (rounded up) train, the rest test. Or
pass ``train_classes``: a list of folder names, or the path of a text file with one per line;
every other class is test.
"""

import os
from collections.abc import Sequence

import numpy as np

from pfml_jax.data.images import IMAGE_EXTENSIONS, FileImageSource
from pfml_jax.data.layout_checks import DatasetLayoutError
from pfml_jax.data.split import Partition

LAYOUT = """  root/
    <class_name>/*.jpg|*.jpeg|*.png    one folder per class (at least two classes); hidden
                                       and macOS "._*" files are ignored"""


def _visible(name: str) -> bool:
  return not name.startswith(".") and name != "__MACOSX"


def _train_class_names(train_classes: Sequence[str] | str) -> list[str]:
  if isinstance(train_classes, str):
    if not os.path.isfile(train_classes):
      raise DatasetLayoutError(f"train_classes file {train_classes} not found: expected a text "
                               "file with one class folder name per line, or a list of names.")
    with open(train_classes, encoding="utf-8") as f:
      return [line.strip() for line in f if line.strip()]
  return list(train_classes)


def read_image_folder(root: str, train_classes: Sequence[str] | str | None = None
                      ) -> dict[str, Partition]:
  """Train and test partitions of a folder-per-class tree."""
  if not os.path.isdir(root):
    raise DatasetLayoutError(f"{root} is not a directory. Expected layout:\n{LAYOUT}")
  class_names = sorted(d for d in os.listdir(root)
                       if _visible(d) and os.path.isdir(os.path.join(root, d)))
  relative, class_ids = [], []
  for class_id, name in enumerate(class_names):
    files = sorted(f for f in os.listdir(os.path.join(root, name))
                   if _visible(f) and f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
      raise DatasetLayoutError(f"{os.path.join(root, name)} holds no .jpg/.jpeg/.png image. "
                               f"Expected layout:\n{LAYOUT}")
    relative += [os.path.join(name, f) for f in files]
    class_ids += [class_id] * len(files)
  if len(class_names) < 2:
    raise DatasetLayoutError(f"{root} has {len(class_names)} class folder(s); a class-disjoint "
                             f"split needs at least two. Expected layout:\n{LAYOUT}")
  if train_classes is None:
    train = set(class_names[:(len(class_names) + 1) // 2])
  else:
    train = set(_train_class_names(train_classes))
    unknown = sorted(train - set(class_names))
    if unknown or not train or train == set(class_names):
      raise DatasetLayoutError(
          f"train_classes must name some, not all, of the class folders under {root}; "
          f"unknown: {unknown[:10]}; folders: {class_names[:10]}...")
  class_ids = np.array(class_ids, np.int64)
  is_train = np.isin(class_ids, [i for i, n in enumerate(class_names) if n in train])
  whole = Partition(FileImageSource(root, tuple(relative)), class_ids,
                    dict(enumerate(class_names)), tuple(relative))
  return {"train": whole.subset(np.flatnonzero(is_train)),
          "test": whole.subset(np.flatnonzero(~is_train))}
