"""A split: images, 0-based labels and where they came from.

Readers describe a dataset as two class-disjoint partitions, "train" and "test", each holding
its images and the dataset's own class ids. ``select_split`` turns them into the split a run
asks for: it optionally carves whole validation classes out of the training classes and
re-indexes the labels to 0..C-1.
"""

import dataclasses
from collections.abc import Mapping

import numpy as np

from pfml_jax.data.images import ImageSource
from pfml_jax.data.label_noise import LabelNoiseRecord
from pfml_jax.user_errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Partition:
  """Images of one side of a dataset's class-disjoint split, with the dataset's class ids."""

  images: ImageSource
  class_ids: np.ndarray  # (N,) int64, the dataset's own id of each image's class
  class_names: Mapping[int, str]  # dataset class id -> readable name
  keys: tuple[str, ...]  # per image: its path or record id, stable across storage formats

  def subset(self, indices: np.ndarray) -> "Partition":
    return Partition(self.images.subset(indices), self.class_ids[indices], self.class_names,
                     tuple(self.keys[i] for i in indices))


@dataclasses.dataclass(frozen=True)
class Split:
  """One split of a dataset, ready for the input pipelines.

  Attributes:
    dataset: the reader's name ("cub200", "cars196_tfds", ...).
    split: "train", "val" or "test".
    images: random access to decoded uint8 RGB images (``images[i]`` is (H, W, 3)).
    labels: (N,) int32 in 0..num_classes-1, re-indexed per split in order of class id.
    class_names: readable name of each label.
    class_ids: (num_classes,) the dataset's own id of each label (e.g. CUB 1..200).
    keys: per image, its path relative to the dataset root or its record id.
    root: the folder or data_dir it was read from ("" for the shipped demo set); the cached
      input mode stores its decoded copy below it.
    label_noise: set when ``labels`` were corrupted by ``apply_label_noise``.
  """

  dataset: str
  split: str
  images: ImageSource
  labels: np.ndarray
  class_names: tuple[str, ...]
  class_ids: np.ndarray
  keys: tuple[str, ...]
  root: str = ""
  label_noise: LabelNoiseRecord | None = None

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def __len__(self) -> int:
    return len(self.labels)

  def with_noisy_labels(self, noisy_labels: np.ndarray, record: LabelNoiseRecord) -> "Split":
    """This split with ``apply_label_noise``'s labels, the record kept for provenance."""
    return dataclasses.replace(self, labels=np.asarray(noisy_labels, np.int32),
                               label_noise=record)


def carve_validation_classes(train_class_ids: np.ndarray, val_classes: int,
                             seed: int) -> np.ndarray:
  """The dataset class ids held out as validation: ``val_classes`` drawn with ``seed``."""
  classes = np.unique(train_class_ids)
  if not 0 < val_classes < len(classes):
    raise ConfigError(f"config.data.val_classes={val_classes}: the dataset has {len(classes)} "
                      f"training classes; hold out between 1 and {len(classes) - 1} of them "
                      "(fewer leaves more to train on), or use eval.protocol='paper'.")
  rng = np.random.default_rng([seed, 0x7A1])
  return np.sort(rng.choice(classes, size=val_classes, replace=False))


def split_members(part: Partition, split: str, *, val_classes: int, seed: int) -> np.ndarray:
  """The indices of ``part``'s images that make up ``split`` (all of them for test)."""
  if split not in SPLITS:
    raise ValueError(f"split={split!r}: expected one of {SPLITS}.")
  if split == "val" and val_classes <= 0:
    raise ValueError("split='val' needs val_classes > 0: the validation split is carved from "
                     "the training classes (e.g. read_split(..., val_classes=20)).")
  keep = np.ones(len(part.class_ids), bool)
  if split != "test" and val_classes > 0:
    held_out = carve_validation_classes(part.class_ids, val_classes, seed)
    in_val = np.isin(part.class_ids, held_out)
    keep = in_val if split == "val" else ~in_val
  return np.flatnonzero(keep)


def select_split(dataset: str, partitions: Mapping[str, Partition], split: str, *,
                 val_classes: int, seed: int, root: str) -> Split:
  """The requested split of a dataset's train/test partitions, labels re-indexed to 0..C-1."""
  part = partitions["test" if split == "test" else "train"]
  part = part.subset(split_members(part, split, val_classes=val_classes, seed=seed))
  class_ids, labels = np.unique(part.class_ids, return_inverse=True)
  return Split(dataset=dataset, split=split, images=part.images,
               labels=labels.astype(np.int32).reshape(-1),
               class_names=tuple(part.class_names[int(c)] for c in class_ids),
               class_ids=class_ids, keys=part.keys, root=root)
