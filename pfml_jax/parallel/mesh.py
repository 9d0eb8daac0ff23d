"""The device mesh and the placement of host data on it."""

from collections.abc import Sequence

import jax
import ml_collections
import numpy as np

from pfml_jax.platforms import platform_of
from pfml_jax.user_errors import ConfigError

P = jax.sharding.PartitionSpec


def make_mesh(mesh_config: ml_collections.ConfigDict,
              devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
  """A 1-D 'data' mesh over ``mesh.data`` devices (-1: all) of ``devices`` (default: the
  process's; ahead-of-time compilation passes a TPU topology's)."""
  devices = list(jax.devices() if devices is None else devices)
  size = len(devices) if mesh_config.data == -1 else mesh_config.data
  if not 1 <= size <= len(devices) or len(devices) % size:
    raise ConfigError(f"mesh.data={mesh_config.data}: must be -1 or divide the "
                      f"{len(devices)} available devices.")
  return jax.make_mesh((size,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices[:size])


def batch_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """Rows split over the data axis."""
  return jax.NamedSharding(mesh, P("data"))


def replicated(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  return jax.NamedSharding(mesh, P())


def global_array(rows: np.ndarray, sharding) -> jax.Array:
  """This process's rows -> one global array split over the mesh's data axis."""
  rows = np.asarray(rows)
  global_shape = (rows.shape[0] * jax.process_count(),) + rows.shape[1:]
  return jax.make_array_from_process_local_data(sharding, rows, global_shape)


def platform(mesh: jax.sharding.Mesh) -> str:
  """The platform ("cpu", "cuda", "rocm", "tpu") of the devices the mesh is built on."""
  return platform_of(mesh.devices.flat[0])
