"""``read_split``: one entry point for every dataset, keyed by the config's dataset name."""

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence

import numpy as np

from pfml_jax.data.cars196 import read_cars196
from pfml_jax.data.cub200 import read_cub200
from pfml_jax.data.demo import read_demo
from pfml_jax.data.image_folder import read_image_folder
from pfml_jax.data.images import drop_unreadable
from pfml_jax.data.sop import read_sop
from pfml_jax.data.split import Partition, Split, select_split, split_members
from pfml_jax.data.tfds_reader import TFDS_DATASETS, read_tfds
from pfml_jax.user_errors import ConfigError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DatasetReader:
  """How to read one dataset name into its train/test partitions."""

  read: Callable[..., dict[str, Partition]]
  needs_root: bool = True
  accepts_train_classes: bool = False


READERS: dict[str, DatasetReader] = {
    "cub200": DatasetReader(read_cub200),
    "cars196": DatasetReader(read_cars196),
    "sop": DatasetReader(read_sop),
    "image_folder": DatasetReader(read_image_folder, accepts_train_classes=True),
    "demo": DatasetReader(read_demo, needs_root=False),
    **{name: DatasetReader(functools.partial(read_tfds, name)) for name in TFDS_DATASETS},
}


def read_split(name: str, root: str | None = None, split: str = "train", *,
               val_classes: int = 0, train_classes: Sequence[str] | str | None = None,
               seed: int = 0, skip_corrupt: bool = False, verify: str = "header") -> Split:
  """One class-disjoint split of a dataset, labels re-indexed to 0..C-1.

  Args:
    name: "cub200", "cars196", "sop", "image_folder", "demo", or "cub200_tfds",
      "cars196_tfds", "sop_tfds" (a prepared tensorflow-datasets data_dir).
    root: the dataset folder (raw layouts; its parent also works) or the tfds data_dir;
      ignored for "demo".
    split: "train", "val" or "test".
    val_classes: k > 0 holds k whole training classes out as "val" (drawn with ``seed``) and
      removes them from "train"; "val" needs it.
    train_classes: image_folder only: the training class folders (a list, or a text file with
      one per line); default: the first half of the sorted folder names.
    seed: draws the validation classes.
    skip_corrupt: leave out (and log) unreadable images instead of failing.
    verify: image check at read time: "header" (files open as images; fast), "decode" (every
      image decodes; a full pass) or "none".
  Returns:
    The split.
  """
  if name not in READERS:
    raise ConfigError(f"unknown dataset {name!r}; expected one of {sorted(READERS)}.")
  reader = READERS[name]
  if reader.needs_root and not root:
    raise ConfigError(f"dataset {name!r} needs root (its folder, or the tfds data_dir).")
  if train_classes is not None and not reader.accepts_train_classes:
    raise ValueError(f"train_classes is for image_folder only; {name!r} has a fixed split.")
  options = {"train_classes": train_classes} if reader.accepts_train_classes else {}
  partitions = dict(reader.read(root, **options))
  side = "test" if split == "test" else "train"
  part = partitions[side]
  # Only the requested split's images are checked: reading "val" or "test" opens no image of
  # the classes that train.
  members = split_members(part, split, val_classes=val_classes, seed=seed)
  readable = drop_unreadable(part.images.subset(members), verify, skip_corrupt,
                             f"{name} {split} images", logger)
  if len(readable) < len(members):
    partitions[side] = part.subset(np.setdiff1d(np.arange(len(part.images)),
                                                np.delete(members, readable)))
  return select_split(name, partitions, split, val_classes=val_classes, seed=seed,
                      root=root or "")
