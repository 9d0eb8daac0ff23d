"""Symmetric label noise for the robustness experiments (PFML paper, Sec. 5.4).

With probability ``rate`` each training label is replaced by a class drawn uniformly from the
OTHER training classes; the draw is fixed by ``seed``. Only the labels passed in change: apply
it to the training split, never to validation or test labels.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class LabelNoiseRecord:
  """Which labels were changed, from what to what; saved next to a run's checkpoints."""

  rate: float
  seed: int
  num_classes: int
  num_labels: int
  indices: np.ndarray  # (M,) int64 positions of the changed labels
  original: np.ndarray  # (M,) int32 their clean labels
  noisy: np.ndarray  # (M,) int32 the labels they were given

  @property
  def realized_rate(self) -> float:
    """Fraction of labels actually changed (close to ``rate`` for many labels)."""
    return float(len(self.indices)) / max(self.num_labels, 1)

  def to_json(self) -> dict:
    """Every changed label in full (written as the run's label_noise.json)."""
    return {"rate": self.rate, "seed": self.seed, "num_classes": self.num_classes,
            "num_labels": self.num_labels, "indices": self.indices.tolist(),
            "original": self.original.tolist(), "noisy": self.noisy.tolist()}


def apply_label_noise(labels: np.ndarray, num_classes: int, rate: float,
                      seed: int) -> tuple[np.ndarray, LabelNoiseRecord]:
  """Replaces each label, with probability ``rate``, by a uniformly drawn other class.

  Args:
    labels: (N,) int training labels in 0..num_classes-1.
    num_classes: number of training classes (at least 2 when rate > 0).
    rate: probability in [0, 1] that a label is replaced.
    seed: fixes which labels change and what they become.
  Returns:
    The noisy labels (int32; a new array) and the record of the changes.
  """
  labels = np.asarray(labels)
  if not 0.0 <= rate <= 1.0:
    raise ValueError(f"label noise rate={rate}: must lie in [0, 1].")
  if rate > 0 and num_classes < 2:
    raise ValueError("label noise needs at least two classes to swap between.")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in 0..{num_classes - 1}.")
  rng = np.random.default_rng([seed, 0x401])
  flip = rng.random(labels.shape[0]) < rate
  # Uniform over the num_classes - 1 others: draw from 0..C-2 and skip the true class.
  offset = rng.integers(0, max(num_classes - 1, 1), size=labels.shape[0])
  other = offset + (offset >= labels)
  noisy = np.where(flip, other, labels).astype(np.int32)
  indices = np.flatnonzero(flip)
  record = LabelNoiseRecord(rate=float(rate), seed=int(seed), num_classes=int(num_classes),
                            num_labels=int(labels.shape[0]), indices=indices,
                            original=labels[indices].astype(np.int32), noisy=noisy[indices])
  return noisy, record
