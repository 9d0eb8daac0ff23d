"""What a run needs to be reproduced: resolved config, package versions, devices, seed."""

import importlib.metadata
import platform
import sys
from typing import Any

import jax
import ml_collections

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "tensorflow-datasets",
            "numpy", "faiss-cpu", "ml-collections", "pillow", "scipy", "safetensors")


def package_versions() -> dict[str, str]:
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = "not installed"
  return versions


def run_info(config: ml_collections.ConfigDict, **extra: Any) -> dict[str, Any]:
  """A JSON-ready record of the run's set-up."""
  devices = jax.devices()
  return {
      "config": config.to_dict(),
      "seed": config.seed,
      "python": sys.version.split()[0],
      "platform": platform.platform(),
      "packages": package_versions(),
      "backend": jax.default_backend(),
      "device_kind": devices[0].device_kind,
      "device_count": len(devices),
      "process_count": jax.process_count(),
      **extra,
  }
