"""The data layer: class-disjoint DML splits, class-balanced batches, augmentation, label noise.

The input pipelines deliver uint8 RGB images; normalisation (mean/std) belongs to the model.
See docs/data.md.
"""

from pfml_jax.data.crops import INTERPOLATIONS
from pfml_jax.data.datasets import READERS, read_split
from pfml_jax.data.device_augment import augment_on_device, place_cache
from pfml_jax.data.eval_input import EvalInput, eval_batches
from pfml_jax.data.image_cache import ImageCache, build_image_cache
from pfml_jax.data.images import CorruptImageError
from pfml_jax.data.label_noise import LabelNoiseRecord, apply_label_noise
from pfml_jax.data.layout_checks import DatasetLayoutError
from pfml_jax.data.sampler import (SAMPLERS, ClassBalancedSampler, RandomSampler, SamplerSpec,
                                   make_sampler)
from pfml_jax.data.split import Split
from pfml_jax.data.train_input import (MODES, CachedMode, Crops, GrainMode, TrainInput,
                                       make_train_input)

__all__ = [
    "INTERPOLATIONS", "MODES", "READERS", "SAMPLERS", "CachedMode", "ClassBalancedSampler",
    "CorruptImageError", "Crops", "DatasetLayoutError", "EvalInput", "GrainMode", "ImageCache",
    "LabelNoiseRecord", "RandomSampler", "SamplerSpec", "Split", "TrainInput", "apply_label_noise", "augment_on_device", "build_image_cache", "eval_batches",
    "make_sampler", "make_train_input", "place_cache", "read_split",
]
