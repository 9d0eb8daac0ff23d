"""The trainer's jitted train step and the evaluator's embedding step, lowered and compiled
from abstract arguments (shapes, dtypes and shardings), for whatever devices the set-up's mesh
spans (a TPU topology's compile-only devices, or this process's)."""

import dataclasses
import math

import jax
import jax.numpy as jnp

from pfml_jax.parallel import mesh as mesh_lib
from pfml_jax.training import setup as setup_lib


def abstract_train_arguments(setup: setup_lib.TrainSetup, train_input) -> tuple:
  """(state, device data, batch, rng) of the train step as sharded ShapeDtypeStructs: the
  batch has the shapes of the input's step-0 batch, its rows split over the mesh."""
  rows = mesh_lib.batch_sharding(setup.mesh)
  batch = {name: jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=rows)
           for name, value in train_input.host_batch(0).items()}
  rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype,
                             sharding=mesh_lib.replicated(setup.mesh))
  return setup.abstract_sharded_state(), train_input.abstract_device_data(), batch, rng


def lower_train_step(setup: setup_lib.TrainSetup, train_input) -> jax.stages.Lowered:
  """The trainer's step (``setup.jit_train_step``) lowered for the set-up's mesh."""
  step = setup_lib.jit_train_step(setup, train_input)
  return step.lower(*abstract_train_arguments(setup, train_input))


def lower_embed_step(setup: setup_lib.TrainSetup) -> jax.stages.Lowered:
  """The evaluator's jitted embedding of one global evaluation batch."""
  evaluator = setup.evaluator
  size = setup.embedder.image_size
  images = jax.ShapeDtypeStruct((evaluator.global_batch_size, size, size, 3), jnp.uint8,
                                sharding=mesh_lib.batch_sharding(setup.mesh))
  variables = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=mesh_lib.replicated(setup.mesh)),
      setup.abstract_state.variables())
  return evaluator.embed_fn.lower(variables, images)


@dataclasses.dataclass(frozen=True)
class LeafSize:
  """One argument array: its path and its bytes on one chip."""

  path: str
  bytes_per_chip: int


TRAIN_ARGUMENTS = ("state", "device_data", "batch", "rng")


def largest_arguments(arguments: tuple, count: int = 3) -> list[LeafSize]:
  """The ``count`` largest arrays per chip of the train step's ``arguments`` (sharded
  ShapeDtypeStructs, in ``TRAIN_ARGUMENTS`` order), named by their path."""
  named = dict(zip(TRAIN_ARGUMENTS, arguments))
  leaves = jax.tree_util.tree_flatten_with_path(named)[0]
  sizes = [LeafSize(jax.tree_util.keystr(path),
                    _shard_bytes(leaf)) for path, leaf in leaves]
  return sorted(sizes, key=lambda leaf: -leaf.bytes_per_chip)[:count]


def _shard_bytes(leaf: jax.ShapeDtypeStruct) -> int:
  shape = leaf.sharding.shard_shape(leaf.shape) if leaf.sharding is not None else leaf.shape
  return math.prod(shape) * leaf.dtype.itemsize
