"""A config's training set-up built from shapes only: no dataset, no weights read.

The datasets' training partitions are described by their published counts (the readers'
``EXPECTED`` checks); a synthetic split with those counts gives the run the same class count,
proxies, batch shapes and steps per epoch as the real data. The cached input mode's image cache
is an (N, R, R, 3) array that holds no pixels (a zero-stride view), R = ``data.cache_size``
capped at the dataset's largest original side where that is known.
"""

import dataclasses
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np

from pfml_jax.data import cars196, cub200, sop
from pfml_jax.data.image_cache import ImageCache
from pfml_jax.data.images import ArrayImageSource
from pfml_jax.data.run_splits import validation_classes
from pfml_jax.data.split import Split
from pfml_jax.training import setup as setup_lib
from pfml_jax.user_errors import ConfigError

# (training images, training classes) of each dataset's training partition.
TRAIN_COUNTS = {"cub200": cub200.EXPECTED["train"], "cars196": cars196.EXPECTED["train"],
                "sop": sop.EXPECTED["train"]}
# The largest original image side, where every image is known to be at most it: CUB's
# originals are all <= 500 px (see data.cache_size in default_config.py).
LARGEST_SIDE = {"cub200": 500}


@dataclasses.dataclass(frozen=True)
class DatasetShape:
  """What a compile needs to know of the training data: its counts and the cache's side."""

  train_images: int
  train_classes: int
  cache_side: int


def dataset_shape(config: ml_collections.ConfigDict, train_images: int | None = None,
                  train_classes: int | None = None) -> DatasetShape:
  """The training partition's counts (the dataset's published ones unless given), less the
  validation classes the config holds out, and the cache side R."""
  name = config.data.name.removesuffix("_tfds")
  if (train_images is None or train_classes is None) and name not in TRAIN_COUNTS:
    raise ConfigError(f"data.name={config.data.name}: its training counts are not known "
                      "without reading it; pass --train_images and --train_classes.")
  images, classes = TRAIN_COUNTS.get(name, (None, None))
  images, classes = train_images or images, train_classes or classes
  held_out = validation_classes(config)
  images, classes = round(images * (classes - held_out) / classes), classes - held_out
  if not config.data.cache_size and config.data.input_mode == "cached":
    raise ConfigError("data.cache_size=0 caches every image at its original size, unknown "
                      "without reading the data; set --config.data.cache_size.")
  side = min(config.data.cache_size or 1, LARGEST_SIDE.get(name, config.data.cache_size or 1))
  return DatasetShape(images, classes, side)


def synthetic_split(config: ml_collections.ConfigDict, shape: DatasetShape) -> Split:
  """A training split of ``shape``'s counts, classes as even as the counts allow; its images
  are one black R x R picture (the grain mode decodes it to know the batch's shapes)."""
  labels = np.sort(np.arange(shape.train_images) % shape.train_classes).astype(np.int32)
  picture = np.zeros((1, shape.cache_side, shape.cache_side, 3), np.uint8)
  return Split(dataset=config.data.name, split="train",
               images=ArrayImageSource(picture, np.zeros(len(labels), np.int64)),
               labels=labels, class_names=tuple(map(str, range(shape.train_classes))),
               class_ids=np.arange(shape.train_classes), keys=tuple(map(str, range(len(labels)))))


def empty_cache(shape: DatasetShape) -> ImageCache:
  """An image cache of the right shape holding no pixels (every entry reads 0)."""
  count, side = shape.train_images, shape.cache_side
  sizes = np.full(count, side, np.int32)
  images = np.broadcast_to(np.zeros((), np.uint8), (count, side, side, 3))
  return ImageCache(images, sizes, sizes, sizes, sizes)


def abstract_setup(config: ml_collections.ConfigDict, devices: Sequence[jax.Device],
                   shape: DatasetShape):
  """The trainer's set-up (``setup.build``) on ``devices`` and its training input (step 0),
  from the synthetic split of ``shape``."""
  split = synthetic_split(config, shape)
  setup = setup_lib.build(config, splits=(split, None, split), devices=devices)
  return setup, setup_lib.open_train_input(setup, start_step=0, cache=empty_cache(shape))
