"""The platform a computation targets, named as ``jax.export`` names them.

Platform-dependent choices (the ViT's attention implementation, PFML's energy path) follow
the devices a mesh is built on, or a platform named for export, never the process's default
backend: "cpu", "cuda", "rocm" or "tpu".
"""

import jax

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def platform_of(device: jax.Device) -> str:
  if device.platform != "gpu":
    return device.platform
  try:
    return "cuda" if device in jax.devices("cuda") else "rocm"
  except RuntimeError:  # a GPU backend without CUDA
    return "rocm"


def default_platform() -> str:
  """The platform of the process's first device (when no mesh or platform is given)."""
  return platform_of(jax.devices()[0])


def check_platform(platform: str) -> str:
  if platform not in PLATFORMS:
    raise ValueError(f"platform={platform!r}: expected one of {PLATFORMS}.")
  return platform
