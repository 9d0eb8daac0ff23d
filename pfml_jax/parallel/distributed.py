"""Multi-process start-up through JAX's own runtime (``jax.distributed``)."""

import os

import jax
from absl import logging
from pfml_jax.user_errors import ConfigError

# Environments where jax.distributed.initialize() finds the coordinator by itself.
_AUTO_DETECTED = ("SLURM_JOB_ID", "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS",
                  "OMPI_COMM_WORLD_SIZE")


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
  """Joins the processes of a multi-process run; a no-op for a single process.

  Explicit arguments (a local multi-process run, or any cluster) take precedence; otherwise
  TPU pod slices, SLURM and Open MPI are detected from their environment.
  """
  explicit = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in explicit):
    if any(v is None for v in explicit):
      raise ConfigError("Multi-process flags go together: --coordinator_address, "
                        "--num_processes and --process_id.")
    # Cross-process collectives on CPU devices (only the CPU client reads this option).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  elif any(name in os.environ for name in _AUTO_DETECTED) and _multi_host_environment():
    jax.distributed.initialize()
  logging.info("process %d of %d; %d local / %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def _multi_host_environment() -> bool:
  """True unless the detected cluster runs this job as a single process."""
  for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
    if name in os.environ:
      return int(os.environ[name]) > 1
  return True
