"""A config resolved once: validated, with every value derived from it computed in one place.

The trainer, the ahead-of-time compiler, the analysis tools, inference and ``--dry_run`` take
these values from here instead of recomputing them from the config.
"""

import dataclasses

import ml_collections
import numpy as np

from pfml_jax.data.run_splits import validation_classes
from pfml_jax.data.sampler import SamplerSpec
from pfml_jax.settings import validation


@dataclasses.dataclass(frozen=True)
class RunLength:
  """Batch size and steps; an epoch is the sampler's ceil(train images / batch size)."""

  batch_size: int
  steps_per_epoch: int
  total_steps: int

  def every(self, epochs: float) -> int:
    """A cadence in epochs as a step interval (at least 1)."""
    return max(1, int(epochs * self.steps_per_epoch))


@dataclasses.dataclass(frozen=True)
class RunSettings:
  """The values every part of a run derives from its config.

  Attributes:
    config: the validated config (the source of every other field).
    batch_size: the global batch, data.classes_per_batch x data.images_per_class.
    validation_classes: training classes held out for model selection (0 under "paper").
    sampler: the training sampler's spec.
  """

  config: ml_collections.ConfigDict
  batch_size: int
  validation_classes: int
  sampler: SamplerSpec

  def run_length(self, train_labels: np.ndarray, train_classes: int) -> RunLength:
    """Steps per epoch and in all, once the training split is read; raises ConfigError when
    the split has fewer classes than a batch draws."""
    validation.validate_training_split(self.config, train_classes)
    steps_per_epoch = self.sampler.build(train_labels).steps_per_epoch
    return RunLength(self.batch_size, steps_per_epoch,
                     self.config.steps or self.config.epochs * steps_per_epoch)


def derived(config: ml_collections.ConfigDict) -> RunSettings:
  """The derived values of a config validated before (a finished run's recorded config)."""
  batch_size = config.data.classes_per_batch * config.data.images_per_class
  return RunSettings(config, batch_size, validation_classes(config),
                     SamplerSpec(config.data.sampler, batch_size, config.data.classes_per_batch,
                                 config.seed))


def resolve(config: ml_collections.ConfigDict, device_count: int | None = None) -> RunSettings:
  """Validates ``config`` (the batch against ``device_count`` devices, default the process's)
  and derives its values; raises ConfigError for the first bad field."""
  validation.validate(config, device_count)
  return derived(config)
