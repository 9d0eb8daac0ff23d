"""Class-balanced batches: P classes x K images, a pure function of (seed, step).

Classes are visited in rounds: round r is a permutation of all classes drawn from (seed, r),
cut into floor(C / P) batches of P distinct classes (the C mod P classes left over sit that
round out). Inside a batch each class contributes K images drawn from (seed, step, class),
without replacement when it has at least K images, with replacement otherwise.

There is no hidden state: ``batch(step)`` can be asked for any step in any order, so a restored
run replays the same batches from its saved step; the only thing to checkpoint is that step.
An epoch is defined as ``ceil(num_images / batch_size)`` steps: as many images as the split
holds, not a pass over every image (P x K sampling repeats some and misses others).
"""

import math

import numpy as np


class ClassBalancedSampler:
  """Global batch indices of P classes x K images for every step."""

  def __init__(self, labels: np.ndarray, classes_per_batch: int, batch_size: int, seed: int):
    labels = np.asarray(labels)
    if batch_size % classes_per_batch:
      raise ValueError(f"batch_size={batch_size} must be a multiple of classes_per_batch="
                       f"{classes_per_batch} (K = batch_size / classes_per_batch images each).")
    self.classes = np.unique(labels)
    if len(self.classes) < classes_per_batch:
      raise ValueError(f"classes_per_batch={classes_per_batch} exceeds the {len(self.classes)} "
                       "classes of the training split.")
    self.classes_per_batch = classes_per_batch
    self.images_per_class = batch_size // classes_per_batch
    self.batch_size = batch_size
    self.seed = seed
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], self.classes, side="left")
    self._members = np.split(order, bounds[1:])
    self.num_images = len(labels)
    self.batches_per_round = len(self.classes) // classes_per_batch

  @property
  def steps_per_epoch(self) -> int:
    """ceil(num_images / batch_size): the definition of an epoch used everywhere."""
    return math.ceil(self.num_images / self.batch_size)

  def batch(self, step: int) -> np.ndarray:
    """(batch_size,) int64 image indices of the global batch at ``step``, class by class."""
    round_index, position = divmod(int(step), self.batches_per_round)
    permutation = np.random.default_rng([self.seed, 0xC1A55, round_index]).permutation(
        len(self.classes))
    chosen = permutation[position * self.classes_per_batch:(position + 1) *
                         self.classes_per_batch]
    k = self.images_per_class
    picks = []
    for class_position in chosen:
      members = self._members[class_position]
      rng = np.random.default_rng([self.seed, 0x1A6E5, int(step), int(class_position)])
      picks.append(rng.choice(members, size=k, replace=len(members) < k))
    return np.concatenate(picks).astype(np.int64)

  def state(self, next_step: int) -> dict[str, int]:
    """What a checkpoint needs to replay the batches: the next step (and the seed, to check)."""
    return {"next_step": int(next_step), "seed": self.seed}

  def restore(self, state: dict[str, int]) -> int:
    """The step to resume from; fails if the checkpoint was written with another seed."""
    if int(state["seed"]) != self.seed:
      raise ValueError(f"checkpointed sampler seed {state['seed']} != configured {self.seed}.")
    return int(state["next_step"])
