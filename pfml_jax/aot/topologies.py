"""TPU slices by the names Cloud TPU sells them under, as ``get_topology_desc`` arguments.

A name is ``<chip>-<chips>`` (``v5e-8``, ``v4-32``, ``v5p-128``) or ``<n>x<name>`` for ``n``
slices of that topology (``2xv5e-256``). Topology shapes, chip configurations and host bounds
follow the TPU topology names the Cloud TPU documentation lists for each slice (v5e-8 is one
host of 8 chips; the other v5e slices are hosts of 2 x 2 chips; v4 and v5p chips are one
"megacore" device each). Chip figures are the published per-chip values of the Cloud TPU
system-architecture pages ("TPU v4", "TPU v5e", "TPU v5p", "TPU v6e"): peak bf16 compute, HBM
capacity and HBM bandwidth.
"""

import dataclasses
import re

from pfml_jax.user_errors import UserInputError

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Chip:
  """One TPU chip's published figures."""

  name: str
  hbm_bytes: int
  peak_bf16_flops: float  # per second
  hbm_bytes_per_second: float
  source: str


CHIPS = {
    "v4": Chip("TPU v4", 32 * GIB, 275e12, 1200e9, "Cloud TPU docs, TPU v4: 275 TFLOPs bf16, "
               "32 GiB HBM2, 1,200 GBps"),
    "v5e": Chip("TPU v5e", 16 * GIB, 197e12, 819e9, "Cloud TPU docs, TPU v5e: 197 TFLOPs bf16, "
                "16 GB HBM2, 819 GBps"),
    "v5p": Chip("TPU v5p", 95 * 10**9, 459e12, 2765e9, "Cloud TPU docs, TPU v5p: 459 TFLOPs "
                "bf16, 95 GB HBM2e, 2,765 GBps"),
    "v6e": Chip("TPU v6e", 32 * 10**9, 918e12, 1640e9, "Cloud TPU docs, TPU v6e: 918 TFLOPs "
                "bf16, 32 GB HBM, 1,640 GBps"),
}


@dataclasses.dataclass(frozen=True)
class Topology:
  """A slice (or ``num_slices`` of them) as ``jax.experimental.topologies`` describes it."""

  name: str
  chip: Chip
  topology_name: str  # e.g. "v5e:4x8"
  chip_config_name: str  # "default" (one TensorCore per chip) or "megacore"
  chips_per_host_bounds: tuple[int, int, int]
  wrap: tuple[bool, bool, bool]
  num_slices: int = 1

  @property
  def chips_per_host(self) -> int:
    x, y, z = self.chips_per_host_bounds
    return x * y * z

  def arguments(self) -> dict:
    """Keyword arguments of ``jax.experimental.topologies.get_topology_desc``."""
    return dict(platform="tpu", topology_name=self.topology_name,
                chip_config_name=self.chip_config_name,
                chips_per_host_bounds=self.chips_per_host_bounds, wrap=self.wrap,
                num_slices=self.num_slices)


_NO_WRAP, _TORUS_2D, _TORUS_3D = (False, False, False), (True, True, False), (True, True, True)
_SLICES = {
    # name: (chip, topology, chip config, chips per host bounds, wraparound links)
    "v5e-4": ("v5e", "2x2", "default", (2, 2, 1), _NO_WRAP),
    "v5e-8": ("v5e", "2x4", "default", (2, 4, 1), _NO_WRAP),
    "v5e-16": ("v5e", "4x4", "default", (2, 2, 1), _NO_WRAP),
    "v5e-32": ("v5e", "4x8", "default", (2, 2, 1), _NO_WRAP),
    "v5e-64": ("v5e", "8x8", "default", (2, 2, 1), _NO_WRAP),
    "v5e-128": ("v5e", "8x16", "default", (2, 2, 1), (False, True, False)),
    "v5e-256": ("v5e", "16x16", "default", (2, 2, 1), _TORUS_2D),
    "v6e-8": ("v6e", "2x4", "default", (2, 4, 1), _NO_WRAP),
    "v6e-256": ("v6e", "16x16", "default", (2, 2, 1), _TORUS_2D),
    "v4-8": ("v4", "2x2x1", "megacore", (2, 2, 1), _NO_WRAP),
    "v4-32": ("v4", "2x2x4", "megacore", (2, 2, 1), _NO_WRAP),
    "v4-128": ("v4", "4x4x4", "megacore", (2, 2, 1), _TORUS_3D),
    "v5p-8": ("v5p", "2x2x1", "megacore", (2, 2, 1), _NO_WRAP),
    "v5p-32": ("v5p", "2x2x4", "megacore", (2, 2, 1), _NO_WRAP),
    "v5p-128": ("v5p", "4x4x4", "megacore", (2, 2, 1), _TORUS_3D),
}
# The topology-name prefix of each chip (v5p chips are "v5").
_PREFIX = {"v4": "v4", "v5e": "v5e", "v5p": "v5", "v6e": "v6e"}
_MULTI_SLICE = re.compile(r"(\d+)x(.+)")


def topology(name: str) -> Topology:
  """The slice called ``name`` (``v5e-8``, ``2xv5e-256``, ...)."""
  match = _MULTI_SLICE.fullmatch(name)
  num_slices, single = (int(match.group(1)), match.group(2)) if match else (1, name)
  if single not in _SLICES or num_slices < 1:
    raise UserInputError(f"--topology={name}: unknown; expected one of {', '.join(_SLICES)}, "
                         "or <n>x<one of them> for n slices (e.g. 2xv5e-256).")
  chip, shape, config_name, host_bounds, wrap = _SLICES[single]
  return Topology(name, CHIPS[chip], f"{_PREFIX[chip]}:{shape}", config_name, host_bounds,
                  wrap, num_slices)


def names() -> tuple[str, ...]:
  return tuple(_SLICES)
