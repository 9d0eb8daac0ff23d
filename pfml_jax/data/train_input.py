"""Training input: class-balanced batches with RandomResizedCrop + flip, in two modes.

Both modes share the sampler (``sampler.py``) and the crop parameters (``crops.py``): for a
given (seed, step) they select the same images and the same crop boxes and flips.

- ``grain``: worker processes (and threads) decode the images and crop them with PIL; each
  step yields ``{"images": uint8 (B_local, S, S, 3), "labels": int32 (B_local,)}``.
- ``cached``: every image is decoded once into an ``ImageCache``; each step yields
  ``{"indices": int32, "boxes": float32 (B_local, 4), "flips": bool, "sizes": int32
  (B_local, 2) cached heights and widths, "labels": int32}`` and the crops run on the
  accelerator inside the train step (``device_images``), resampled as the grain mode's.

One loop serves both::

    train_input = make_train_input(split, SamplerSpec(...), Crops(...), GrainMode() or
                                   CachedMode(...), start_step=step)
    device_data = train_input.device_data()  # the cache on device, or {} (once)
    for host_batch in train_input:  # this process's rows of each global batch
      batch = {k: jax.make_array_from_process_local_data(batch_sharding, v)
               for k, v in host_batch.items()}
      # inside the jitted step: images = train_input.device_images(device_data, batch)

Multi-host: the global batch of a step is a function of (seed, step); process p of P keeps
rows [p * B / P, (p + 1) * B / P). Resuming: pass ``start_step`` = the saved step; nothing
else about the input needs checkpointing.
"""

import dataclasses
import itertools
import zlib
from collections.abc import Iterator
from typing import Protocol

import grain
import jax
import numpy as np

from pfml_jax import checks
from pfml_jax.data.crops import (CropVariates, crop_boxes, crop_resize_flip,
                                  crop_variates)
from pfml_jax.data.device_augment import augment_on_device, place_cache, placed_cache_shape
from pfml_jax.data.grain_pipeline import prefetching_iterator
from pfml_jax.data.image_cache import ImageCache, build_image_cache
from pfml_jax.data.images import ImageSource
from pfml_jax.data.sampler import ClassBalancedSampler, RandomSampler, SamplerSpec
from pfml_jax.data.split import Split

MODES = ("grain", "cached")
# The grain pipeline is indexed by step; this bounds it (never reached in practice).
MAX_STEPS = 2**40


@dataclasses.dataclass(frozen=True)
class BatchPlan:
  """What every step needs to know, picklable for grain's worker processes."""

  sampler: ClassBalancedSampler | RandomSampler
  labels: np.ndarray
  seed: int
  image_size: int
  scale: tuple[float, float]
  ratio: tuple[float, float]
  interpolation: str
  rows: tuple[int, int]  # this process's rows of the global batch
  flip: bool = True  # mirror half of the crops horizontally

  def indices_and_variates(self, step: int) -> tuple[np.ndarray, CropVariates]:
    """This process's image indices and crop random numbers at ``step``."""
    start, stop = self.rows
    indices = self.sampler.batch(step)[start:stop]
    variates = crop_variates(self.seed, step, self.sampler.batch_size).rows(start, stop)
    return indices, variates

  def state(self, next_step: int) -> dict:
    """The sampler's state and a digest of the labels it draws from, so that a resume can
    tell a changed split, label noise or batch shape from the checkpointed one."""
    labels = np.ascontiguousarray(self.labels, np.int32)
    return {**self.sampler.state(next_step), "train_images": len(labels),
            "labels_crc32": zlib.crc32(labels.tobytes())}


@dataclasses.dataclass(frozen=True)
class DecodeAndCrop:
  """grain map function: step -> this process's decoded, cropped batch."""

  plan: BatchPlan
  images: ImageSource

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    indices, variates = self.plan.indices_and_variates(step)
    decoded = [self.images.image(int(i)) for i in indices]
    boxes = crop_boxes(variates, np.array([d.size[1] for d in decoded]),
                       np.array([d.size[0] for d in decoded]), self.plan.scale, self.plan.ratio,
                       self.plan.flip)
    pixels = np.stack([
        crop_resize_flip(image, boxes.top[j], boxes.left[j], boxes.height[j], boxes.width[j],
                         boxes.flip[j], self.plan.image_size, self.plan.interpolation)
        for j, image in enumerate(decoded)])
    return {"images": pixels, "labels": self.plan.labels[indices].astype(np.int32)}


@dataclasses.dataclass(frozen=True)
class StreamedTrainInput:
  """grain mode: worker processes decode and crop each step's images on the host."""

  plan: BatchPlan
  images: ImageSource
  start_step: int
  workers: int
  threads: int

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    dataset = grain.MapDataset.range(self.start_step, MAX_STEPS).map(
        DecodeAndCrop(self.plan, self.images))
    return prefetching_iterator(dataset, self.threads, self.workers)

  def host_batch(self, step: int) -> dict[str, np.ndarray]:
    """The batch of ``step``, decoded in this process (what the workers yield)."""
    return DecodeAndCrop(self.plan, self.images)(step)

  def device_data(self) -> dict[str, jax.Array]:
    return {}

  def abstract_device_data(self) -> dict[str, jax.ShapeDtypeStruct]:
    return {}

  def device_images(self, device_data: dict[str, jax.Array],
                    batch: dict[str, jax.Array]) -> jax.Array:
    del device_data
    return batch["images"]


@dataclasses.dataclass(frozen=True)
class CachedTrainInput:
  """cached mode: the images live on device, decoded once; the step crops them there."""

  plan: BatchPlan
  cache: ImageCache
  start_step: int
  mesh: jax.sharding.Mesh | None
  cache_axis: str | None

  def host_batch(self, step: int) -> dict[str, np.ndarray]:
    """The host batch: image rows, crop boxes, flips, cached sizes and labels."""
    indices, variates = self.plan.indices_and_variates(step)
    heights, widths = self.cache.heights[indices], self.cache.widths[indices]
    boxes = crop_boxes(variates, heights, widths, self.plan.scale, self.plan.ratio,
                       self.plan.flip)
    sizes = np.stack([self.cache.cached_heights[indices], self.cache.cached_widths[indices]],
                     axis=1).astype(np.int32)
    return {"indices": indices.astype(np.int32), "boxes": boxes.normalized(heights, widths),
            "flips": boxes.flip, "sizes": sizes,
            "labels": self.plan.labels[indices].astype(np.int32)}

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return map(self.host_batch, itertools.count(self.start_step))

  def device_data(self) -> dict[str, jax.Array]:
    return {"cache": place_cache(self.cache.images, self.mesh, self.cache_axis)}

  def abstract_device_data(self) -> dict[str, jax.ShapeDtypeStruct]:
    return {"cache": placed_cache_shape(self.cache.images.shape, self.mesh, self.cache_axis)}

  def device_images(self, device_data: dict[str, jax.Array],
                    batch: dict[str, jax.Array]) -> jax.Array:
    return augment_on_device(device_data["cache"], batch["indices"], batch["boxes"],
                             batch["flips"], batch["sizes"], out_size=self.plan.image_size,
                             interpolation=self.plan.interpolation, mesh=self.mesh,
                             cache_axis=self.cache_axis)


class TrainInput(Protocol):
  """Iterable over this process's share of every training batch from ``start_step`` on."""

  plan: BatchPlan

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]: ...

  def host_batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's rows of the batch of ``step``."""

  def device_data(self) -> dict[str, jax.Array]:
    """Arrays the train step needs on device, placed once (the image cache, or nothing)."""

  def abstract_device_data(self) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes, dtypes and shardings of ``device_data()``, without placing anything."""

  def device_images(self, device_data: dict[str, jax.Array],
                    batch: dict[str, jax.Array]) -> jax.Array:
    """(B, S, S, 3) uint8 training images of a (global) batch; call inside the jitted step."""


@dataclasses.dataclass(frozen=True)
class Crops:
  """The training crops: RandomResizedCrop of an ``scale`` area fraction and ``ratio`` aspect
  range to ``image_size``, resampled with ``interpolation``, half of them mirrored if ``flip``."""

  image_size: int
  scale: tuple[float, float] = (0.08, 1.0)  # [torchvision's RandomResizedCrop]
  ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip: bool = True
  interpolation: str = "bilinear"  # or "bicubic"


@dataclasses.dataclass(frozen=True)
class GrainMode:
  """Decode and crop every step's images on the host, in grain worker processes."""

  workers: int = 0  # decoding processes (0: this process's threads)
  threads: int = 4  # decoding threads per process


@dataclasses.dataclass(frozen=True)
class CachedMode:
  """Decode the split once into an ``ImageCache``; crop on the accelerator.

  ``cache_size``: longest side of the cached copy; images up to it keep their original pixels,
  larger ones are downscaled with their aspect kept (None: every image at its original size;
  ``image_cache.py``). ``cache_dir``: where the cache file lives. ``decode_threads``: threads of
  the one-time decode. ``mesh``, ``cache_axis``: the cache placed on this mesh, replicated
  (axis None) or split along the axis. ``cache``: this cache instead of building or loading
  the split's (ahead-of-time compilation passes one of the right shape that holds no pixels).
  """

  cache_size: int | None = None
  cache_dir: str | None = None
  decode_threads: int = 4
  mesh: jax.sharding.Mesh | None = None
  cache_axis: str | None = None
  cache: ImageCache | None = None


def make_train_input(split: Split, batches: SamplerSpec, crops: Crops,
                     mode: GrainMode | CachedMode = GrainMode(), *, start_step: int = 0,
                     process: tuple[int, int] = (0, 1)) -> TrainInput:
  """The training input of ``split`` (labels possibly noisy, see ``Split.with_noisy_labels``):
  the batches of ``batches`` cropped as ``crops``, by ``mode``, from ``start_step`` (the
  checkpointed step when resuming), this process's share (``process`` = (index, count)) of
  each global batch."""
  checks.interpolation(crops.interpolation)
  process_index, process_count = process
  local = checks.divides(batches.batch_size, process_count)
  scale, ratio = checks.crop_ranges(crops.scale, crops.ratio)
  plan = BatchPlan(batches.build(split.labels), np.asarray(split.labels), batches.seed,
                   crops.image_size, scale, ratio, crops.interpolation,
                   (process_index * local, (process_index + 1) * local), bool(crops.flip))
  if isinstance(mode, GrainMode):
    return StreamedTrainInput(plan, split.images, start_step, mode.workers, mode.threads)
  if not isinstance(mode, CachedMode):
    raise ValueError(f"mode: a GrainMode or a CachedMode, got {mode!r}.")
  cache = mode.cache
  if cache is None:
    cache = build_image_cache(split, mode.cache_size, crops.interpolation, mode.cache_dir,
                              workers=mode.decode_threads)
  return CachedTrainInput(plan, cache, start_step, mode.mesh, mode.cache_axis)
