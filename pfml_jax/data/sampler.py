"""Training batches as a pure function of (seed, step): class-balanced (P classes x K images)
or plain random (shuffled images, Proxy Anchor's ``DataLoader(shuffle=True, drop_last=True)``).

``SAMPLERS`` names both; ``make_sampler`` builds one by name.

ClassBalancedSampler:

Classes are visited in rounds: round r is a permutation of all classes drawn from (seed, r),
cut into floor(C / P) batches of P distinct classes (the C mod P classes left over sit that
round out). Inside a batch each class contributes K images drawn from (seed, step, class),
without replacement when it has at least K images, with replacement otherwise.

There is no hidden state: ``batch(step)`` can be asked for any step in any order, so a restored
run replays the same batches from its saved step; the only thing to checkpoint is that step.
An epoch is defined as ``ceil(num_images / batch_size)`` steps: as many images as the split
holds, not a pass over every image (P x K sampling repeats some and misses others).
RandomSampler uses the same definition (see its docstring).
"""

import dataclasses
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

  def state(self, next_step: int) -> dict:
    """What fixes the batches from ``next_step`` on (checkpointed, compared on resume)."""
    return {"next_step": int(next_step), "seed": self.seed, "sampler": "class_balanced",
            "batch_size": self.batch_size, "classes_per_batch": self.classes_per_batch}


class RandomSampler:
  """Global batch indices of uniformly shuffled images, as Proxy Anchor's reference code.

  The reference samples with ``DataLoader(shuffle=True, drop_last=True)``: every epoch a fresh
  permutation of all N training images cut into floor(N / B) full batches, the last N mod B
  images of the permutation dropped. Here batches come from one continuous stream instead:
  the stream is the concatenation of permutations 0, 1, 2, ... of all N images, permutation e
  drawn from ``default_rng([seed, 0x5A3D0, e])``, and the batch at ``step`` s is stream
  positions [s * B, (s + 1) * B). So every batch is full, nothing is dropped, and every image
  appears exactly once in each window of N consecutive stream positions [e * N, (e + 1) * N).

  An epoch is ``ceil(N / B)`` steps, the one definition used everywhere (ClassBalancedSampler
  too). With drop_last a permutation yields only floor(N / B) full batches; here the steps of
  an epoch are simply consecutive stream batches, so a batch that straddles a permutation
  boundary takes the rest of one permutation topped up from the start of the next (it may
  then hold one image twice), and epoch boundaries need not coincide with permutation
  boundaries. Labels are whatever the shuffle gives: batches are not class-balanced.
  """

  STREAM_TAG = 0x5A3D0

  def __init__(self, labels: np.ndarray, batch_size: int, seed: int):
    labels = np.asarray(labels)
    self.num_images = len(labels)
    if not 0 < batch_size <= self.num_images:
      raise ValueError(f"batch_size={batch_size} must be in [1, {self.num_images}] (the images "
                       "of the training split).")
    self.batch_size = batch_size
    self.seed = seed

  @property
  def steps_per_epoch(self) -> int:
    """ceil(num_images / batch_size): the definition of an epoch used everywhere."""
    return math.ceil(self.num_images / self.batch_size)

  def permutation(self, index: int) -> np.ndarray:
    """The ``index``-th permutation of the stream: stream positions [index * N, (index+1) * N)."""
    return np.random.default_rng([self.seed, self.STREAM_TAG, int(index)]).permutation(
        self.num_images)

  def batch(self, step: int) -> np.ndarray:
    """(batch_size,) int64 image indices of the global batch at ``step``: stream positions
    [step * B, (step + 1) * B)."""
    start = int(step) * self.batch_size
    stop = start + self.batch_size
    first, last = start // self.num_images, (stop - 1) // self.num_images
    stream = np.concatenate([self.permutation(e) for e in range(first, last + 1)])
    offset = first * self.num_images
    return stream[start - offset:stop - offset].astype(np.int64)

  def state(self, next_step: int) -> dict:
    """What fixes the batches from ``next_step`` on (checkpointed, compared on resume)."""
    return {"next_step": int(next_step), "seed": self.seed, "sampler": "random",
            "batch_size": self.batch_size}


SAMPLERS = {"class_balanced": ClassBalancedSampler, "random": RandomSampler}


def make_sampler(name: str, labels: np.ndarray, *, batch_size: int, classes_per_batch: int,
                 seed: int):
  """The sampler ``name`` (one of SAMPLERS); classes_per_batch is used by class_balanced only."""
  if name not in SAMPLERS:
    raise ValueError(f"sampler={name!r}: expected one of {sorted(SAMPLERS)}.")
  if name == "class_balanced":
    return ClassBalancedSampler(labels, classes_per_batch, batch_size, seed)
  return RandomSampler(labels, batch_size, seed)


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
  """Which batches a run draws: the sampler (one of SAMPLERS), the global batch size, P classes
  per batch (class_balanced only) and the seed; ``build`` makes it for a split's labels."""

  name: str
  batch_size: int
  classes_per_batch: int
  seed: int = 0

  def build(self, labels: np.ndarray):
    return make_sampler(self.name, labels, batch_size=self.batch_size,
                        classes_per_batch=self.classes_per_batch, seed=self.seed)
