"""The splits a run's config defines: which classes are held out for validation, and the
training split with its label noise."""

import ml_collections

from pfml_jax.data.datasets import read_split as read_dataset_split
from pfml_jax.data.label_noise import apply_label_noise
from pfml_jax.data.split import Split


def validation_classes(config: ml_collections.ConfigDict) -> int:
  """Training classes held out for model selection: data.val_classes under "validated"."""
  return config.data.val_classes if config.eval.protocol == "validated" else 0


def split_seed(config: ml_collections.ConfigDict) -> int:
  """The seed the held-out classes are drawn from: data.split_seed, or the run's seed under
  data.split_per_seed (absent from configs saved before it existed)."""
  return config.seed if config.data.get("split_per_seed", False) else config.data.split_seed


def read_split(config: ml_collections.ConfigDict, split: str) -> Split:
  """One split as the config defines it (held-out classes drawn from ``split_seed``)."""
  return read_dataset_split(config.data.name, config.data.root, split,
                            val_classes=validation_classes(config),
                            seed=split_seed(config), skip_corrupt=config.data.skip_corrupt)


def read_splits(config: ml_collections.ConfigDict):
  """(train, val or None, test) splits, with label noise applied to train if configured."""
  train = read_split(config, "train")
  if config.data.label_noise > 0:
    noisy, record = apply_label_noise(train.labels, train.num_classes, config.data.label_noise,
                                      config.seed)
    train = train.with_noisy_labels(noisy, record)
  val = read_split(config, "val") if validation_classes(config) > 0 else None
  return train, val, read_split(config, "test")
