"""PFML's loss: the total potential energy of embeddings and proxies (paper Eq. 6).

    U = sum over ordered pairs (a != b) of X = embeddings U proxies of
        psi_att(d_ab)  if label_a == label_b  else  psi_rep(d_ab)

with d the Euclidean distance between L2-normalised points. Sample-sample, sample-proxy and
proxy-proxy pairs all count, and gradients reach both ends of every pair. With
``proxy_self_attraction=False`` the same-class proxy-proxy pairs are left out (they add
nothing); different-class proxy-proxy pairs still repel. Every path honours the switch.

Several paths compute the same number: ``dense`` (every pair, autodiff; small sets),
``block_sparse`` (screened and exact, pure XLA, any backend), and on CUDA GPUs ``pallas``
(the same screened, exact scheme as two Pallas Triton kernels, ``pallas_field.py``) and
``pallas_screen`` (the Pallas screen kernel followed by block_sparse's XLA evaluation).
``method="auto"`` picks dense for small sets, else pallas on a CUDA GPU and block_sparse
elsewhere.
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from pfml_jax.losses import pallas_field
from pfml_jax.losses.block_sparse_field import BlockLayout, block_sparse_energy_and_grad
from pfml_jax.losses.dense_field import dense_energy
from pfml_jax.losses.potentials import FieldParams
from pfml_jax.numerics import l2_normalize
from pfml_jax.platforms import check_platform, default_platform, platform_of

METHODS = ("auto", "dense", "block_sparse", "pallas_screen", "pallas")
# Methods that run Pallas Triton kernels: CUDA GPUs only (or Pallas' interpreter).
KERNEL_METHODS = ("pallas_screen", "pallas")
# The dense path holds a few (P, P, D) float32 arrays for autodiff; above this many elements
# the screened paths win on time and memory.
DENSE_MAX_ELEMENTS = 2**22


class _Plan(NamedTuple):
  """Everything static about one fast-path call."""

  field: FieldParams
  layout: BlockLayout
  method: str
  mesh: jax.sharding.Mesh | None
  axis: str | None
  kernel_config: pallas_field.KernelConfig
  interpret: bool
  unpulled_from: int | None  # first proxy row without same-class proxy attraction, else None


@dataclasses.dataclass(frozen=True)
class EnergyExecution:
  """How the energy is computed, never what: every choice gives the same value (to float32
  rounding of the float64 formula).

  Attributes:
    method: "auto", "dense", "block_sparse", "pallas_screen" or "pallas" (see the module
      docstring); the last two need a CUDA GPU unless ``interpret`` is set.
    mesh: optional mesh whose ``axis`` splits the pair rows of the fast paths across devices
      (each device screens and evaluates its rows against all points). Without it, XLA
      partitions the computation by itself.
    axis: the mesh axis name used with ``mesh``.
    kernel_config: tiling of the Pallas kernels (``pallas_field.KernelConfig``).
    interpret: run the Pallas kernels in Pallas' interpreter, on any backend (slow; tests).
    platform: where the energy runs ("cpu", "cuda", "rocm", "tpu"), for ``method="auto"``
      and the kernels' check; None: the mesh's devices', else the default device's.
  """

  method: str = "auto"
  mesh: jax.sharding.Mesh | None = None
  axis: str = "data"
  kernel_config: pallas_field.KernelConfig = pallas_field.DEFAULT_CONFIG
  interpret: bool = False
  platform: str | None = None


def potential_energy(embeddings: jnp.ndarray, labels: jnp.ndarray,
                     proxies: jnp.ndarray | None = None, proxy_labels: jnp.ndarray | None = None,
                     *, alpha: float = 3.0, delta_att: float = 0.2, delta_rep: float = 0.2,
                     normalize_proxies: bool = True, proxy_self_attraction: bool = True,
                     execution: EnergyExecution = EnergyExecution()) -> jnp.ndarray:
  """PFML's total potential energy; a float32 scalar, differentiable in embeddings and proxies.

  Ten parameters, for a reason: the mathematics are keywords in the paper's notation (alpha,
  delta_att, delta_rep, as Eq. 6 writes them) plus the energy's two options, so a call reads
  like the paper; how it runs is one argument, ``execution``.

  Args:
    embeddings: (B, D) float32 or bfloat16; L2-normalised here.
    labels: (B,) int; a label < 0 marks a padding row that contributes nothing.
    proxies: optional (Q, D) learnable proxies (see ``proxies.py``); None for none.
    proxy_labels: (Q,) int class of each proxy (< 0 for padding proxies).
    alpha: decay exponent of the potentials (paper: 3).
    delta_att: radius inside which attraction is flat (paper: 0.2).
    delta_rep: radius beyond which repulsion is constant (paper: 0.2).
    normalize_proxies: project proxies onto the unit sphere like the embeddings (default).
    proxy_self_attraction: count the attraction between proxies of the same class (default,
      the paper's Eq. 6 as we read it); False leaves those pairs out.
    execution: the path, mesh and kernel settings (``EnergyExecution``).
  Returns:
    The energy U as a float32 scalar.
  """
  method, mesh, axis = execution.method, execution.mesh, execution.axis
  kernel_config, interpret = execution.kernel_config, execution.interpret
  field = FieldParams(alpha, delta_att, delta_rep).validate()
  if method not in METHODS:
    raise ValueError(f"potential_energy: execution.method must be one of {METHODS}, got "
                     f"{method!r}.")
  points, point_labels = _gather_points(embeddings, labels, proxies, proxy_labels,
                                        normalize_proxies)
  num_points, dim = points.shape
  on_cuda = _platform(mesh, execution.platform) == "cuda"
  # The kernels' screen assumes unit vectors; unnormalised proxies take the XLA screen, whose
  # threshold follows every point's norm.
  unit_points = normalize_proxies or proxies is None
  if method == "auto":
    method = auto_method(num_points, dim, on_cuda and unit_points)
  if method in KERNEL_METHODS and not unit_points:
    raise ValueError(f"potential_energy: method {method!r} screens unit vectors only; with "
                     "normalize_proxies=False use method='block_sparse' or 'auto'.")
  # Points are the embeddings, then the proxies: the proxies' rows start at len(embeddings).
  unpulled_from = None if proxy_self_attraction else embeddings.shape[0]
  if method == "dense":
    return dense_energy(points, point_labels, field, unpulled_from)
  if method in KERNEL_METHODS and not (on_cuda or interpret):
    raise ValueError(f"potential_energy: method {method!r} runs Triton kernels and needs a CUDA "
                     "GPU, but the points live elsewhere; use method='block_sparse' or 'auto' "
                     "(or interpret=True to run the kernels in Pallas' interpreter, for tests).")
  shards = 1 if mesh is None else mesh.shape[axis]
  if method in KERNEL_METHODS:
    layout = pallas_field.kernel_layout(num_points, shards, kernel_config.validate())
  else:
    layout = BlockLayout.for_points(num_points, shards=shards)
  pad = layout.padded_size - num_points
  points = jnp.pad(points, ((0, pad), (0, 0)))
  point_labels = jnp.pad(point_labels, (0, pad), constant_values=-1)
  plan = _Plan(field, layout, method, mesh if shards > 1 else None, axis, kernel_config,
               interpret, unpulled_from)
  return _screened_energy(points, point_labels, plan)


def _gather_points(embeddings, labels, proxies, proxy_labels, normalize_proxies):
  """X = normalised embeddings followed by the proxies, with their int32 labels."""
  if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
    raise ValueError("potential_energy: embeddings must be (B, D) and labels (B,), got "
                     f"{embeddings.shape} and {labels.shape}.")
  points = [l2_normalize(embeddings)]
  point_labels = [labels.astype(jnp.int32)]
  if proxies is not None:
    if proxy_labels is None or proxies.ndim != 2 or proxy_labels.shape != proxies.shape[:1]:
      raise ValueError("potential_energy: proxies must be (Q, D) with proxy_labels (Q,).")
    if proxies.shape[1] != embeddings.shape[1]:
      raise ValueError(f"potential_energy: proxies have dimension {proxies.shape[1]} but "
                       f"embeddings {embeddings.shape[1]}.")
    proxies = proxies.astype(jnp.float32)
    points.append(l2_normalize(proxies) if normalize_proxies else proxies)
    point_labels.append(proxy_labels.astype(jnp.int32))
  return jnp.concatenate(points), jnp.concatenate(point_labels)


def _platform(mesh: jax.sharding.Mesh | None, platform: str | None) -> str:
  """The platform named, else the mesh's devices', else the default device's."""
  if platform is not None:
    return check_platform(platform)
  return default_platform() if mesh is None else platform_of(mesh.devices.flat[0])


def auto_method(num_points: int, dim: int, on_cuda: bool) -> str:
  """The path ``method="auto"`` takes for ``num_points`` points (batch + proxies) of ``dim``."""
  if num_points * num_points * dim <= DENSE_MAX_ELEMENTS:
    return "dense"
  return "pallas" if on_cuda else "block_sparse"


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _screened_energy(points, labels, plan):
  return _energy_and_grad(points, labels, plan)[0]


def _screened_energy_fwd(points, labels, plan):
  energy, gradient = _energy_and_grad(points, labels, plan)
  return energy, gradient


def _screened_energy_bwd(plan, gradient, cotangent):
  del plan
  return cotangent * gradient, None


_screened_energy.defvjp(_screened_energy_fwd, _screened_energy_bwd)


def _block_sparse(points, labels, row_start, plan: _Plan):
  return block_sparse_energy_and_grad(points, labels, row_start, plan.layout, plan.field,
                                      unpulled_from=plan.unpulled_from)


def _pallas_screen(points, labels, row_start, plan: _Plan):
  screen = functools.partial(pallas_field.screen, config=plan.kernel_config,
                             interpret=plan.interpret)
  return block_sparse_energy_and_grad(points, labels, row_start, plan.layout, plan.field,
                                      screen=screen, unpulled_from=plan.unpulled_from)


def _pallas(points, labels, row_start, plan: _Plan):
  return pallas_field.pallas_energy_and_grad(points, labels, row_start, plan.layout, plan.field,
                                             config=plan.kernel_config,
                                             interpret=plan.interpret,
                                             unpulled_from=plan.unpulled_from)


# (points, labels, row_start, plan) -> (energy of the rows' pairs, gradient of the rows).
_FAST_PATHS = {"block_sparse": _block_sparse, "pallas_screen": _pallas_screen,
               "pallas": _pallas}


def _energy_and_grad(points, labels, plan: _Plan):
  """Energy and its gradient in one pass (the fast paths produce both together)."""
  kernel = _FAST_PATHS[plan.method]
  if plan.mesh is None:
    return kernel(points, labels, jnp.int32(0), plan)

  def shard(points, labels):
    row_start = jax.lax.axis_index(plan.axis) * plan.layout.rows_per_shard
    energy, gradient = kernel(points, labels, row_start, plan)
    return jax.lax.psum(energy, plan.axis), gradient

  spec = jax.sharding.PartitionSpec
  # check_vma=False: the row offset makes loop carries device-varying, which is intended.
  return jax.shard_map(shard, mesh=plan.mesh, in_specs=(spec(), spec()),
                       out_specs=(spec(), spec(plan.axis)), check_vma=False)(points, labels)
