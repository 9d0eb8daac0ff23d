"""The Pallas (Triton) path: screen flags, exact energy and gradients, sharding, Triton lowering.

On CPU the kernels run in Pallas' interpreter (``interpret=True``), which executes the same
kernel bodies; tiny tiles keep it fast. The lowering test builds the Triton IR that a CUDA GPU
would compile, so a kernel that Triton cannot express fails here too.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.losses import EnergyExecution, pallas_field, potential_energy
from pfml_jax.losses.potentials import (FieldParams, clamped_distance, pair_potential,
                                        pair_weight, screen_threshold)
from tests.losses import field_reference
from tests.losses.field_cases import assert_matches_reference, clustered_points

# Tiny tiles so the interpreter is quick: several column splits, exact splits and row groups
# per block; SPLIT_TAIL makes the last column split reach past the last tile.
SMALL = pallas_field.KernelConfig(screen_rows=32, screen_cols=16, screen_depth=16, block=16,
                                  exact_rows=8, exact_splits=3, target_programs=64)
SPLIT_TAIL = pallas_field.KernelConfig(screen_rows=16, screen_cols=16, screen_depth=16,
                                       block=16, exact_rows=16, exact_splits=2,
                                       target_programs=14)


def padded_points(rng, num_valid, dim, layout, num_classes=12, spread=0.15):
  """Unit points around class centres, grouped by class like proxies, padded with label -1."""
  centres = rng.normal(size=(num_classes, dim))
  centres[num_classes // 2] = centres[0]  # two classes in one place: repulsion within delta
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)
  labels = np.sort(rng.integers(0, num_classes, layout.padded_size))
  points = centres[labels] + spread * rng.normal(size=(layout.padded_size, dim)) / np.sqrt(dim)
  points /= np.linalg.norm(points, axis=1, keepdims=True)
  labels[num_valid:] = -1
  return points.astype(np.float32), labels.astype(np.int32)


def force_blocks(points, labels, field, block, same_only=False):
  """(blocks, blocks) bool: blocks holding a pair that carries force, in float64."""
  x = points.astype(np.float64)
  distance = np.sqrt(np.maximum(np.sum((x[:, None] - x[None]) ** 2, axis=-1), 0.0))
  valid = (labels[:, None] >= 0) & (labels[None, :] >= 0) & ~np.eye(len(x), dtype=bool)
  same = labels[:, None] == labels[None, :]
  force = valid & np.where(same, distance > field.delta_att,
                           (not same_only) & (distance < field.delta_rep))
  blocks = len(x) // block
  return force.reshape(blocks, block, blocks, block).any(axis=(1, 3))


@pytest.mark.parametrize("config, shards", [(SMALL, 1), (SPLIT_TAIL, 1), (SPLIT_TAIL, 2)])
def test_screen_flags_every_force_carrying_block(config, shards):
  """One shard computes the upper triangle of tiles; several shards each their row range."""
  field = FieldParams(3.0, 0.2, 0.25)
  layout = pallas_field.kernel_layout(100, shards, config)
  rng = np.random.default_rng(config.screen_rows + shards)
  points, labels = padded_points(rng, 100, 24, layout)
  screen = jax.jit(lambda p, l, start: pallas_field.screen(p, l, start, layout, field,
                                                             config=config, interpret=True))
  parts = [screen(points, labels, jnp.int32(shard * layout.rows_per_shard))
           for shard in range(shards)]
  activity = np.concatenate([np.asarray(part[0]) for part in parts])
  same_counts = np.concatenate([np.asarray(part[1]) for part in parts])
  truth = force_blocks(points, labels, field, config.block)
  assert truth.any() and not truth.all()
  assert np.any(truth & ~force_blocks(points, labels, field, config.block, same_only=True)), (
      "the data should have blocks flagged by distance alone")
  assert np.all(activity[truth]), "a force-carrying block was not flagged"
  # Every flag is justified: a same-label pair, or a pair at most a bf16 rounding above the
  # threshold (so the kernel neither misses nor flags blocks wholesale).
  x = points.astype(np.float64)
  valid = (labels[:, None] >= 0) & (labels[None, :] >= 0)
  candidate = valid & ((labels[:, None] == labels[None, :]) |
                       (x @ x.T > screen_threshold(field) - 2**-7))
  blocks = layout.padded_size // config.block
  justified = candidate.reshape(blocks, config.block, blocks, config.block).any(axis=(1, 3))
  assert np.all(justified[activity])
  want_counts = np.where(labels >= 0, np.sum(valid & (labels[:, None] == labels[None, :]), 1), 0)
  np.testing.assert_array_equal(same_counts, want_counts)


@pytest.mark.parametrize("alpha", [1.0, 2.5, 3.0, 6.0])
def test_kernel_pair_terms_equal_the_potentials(alpha):
  """The kernel's one-power pair terms are potentials.pair_potential and pair_weight."""
  field = FieldParams(alpha, 0.25, 0.15)
  distance = np.concatenate([[0.0, 5e-5, 1e-4, 0.01, 0.15, 0.25, 2.0],
                             np.linspace(0.02, 1.9, 50)]).astype(np.float32)
  squared = jnp.asarray(np.concatenate([distance, distance]) ** 2)
  same = jnp.asarray(np.repeat([True, False], len(distance)))
  excess, weight = pallas_field._pair_terms(squared, same, field)
  want_excess = (pair_potential(clamped_distance(squared), same, field) -
                 jnp.where(same, 0.0, field.far_repulsion))
  np.testing.assert_allclose(excess, want_excess, rtol=2e-6, atol=1e-6 * field.far_repulsion)
  np.testing.assert_allclose(weight, pair_weight(squared, same, field), rtol=2e-6)


def test_split_tail_recomputes_a_tile():
  """The configuration above really has a column split that reaches past the last tile."""
  layout = pallas_field.kernel_layout(100, 1, SPLIT_TAIL)
  grid = pallas_field._grid(layout, 24, SPLIT_TAIL)
  assert grid.splits * grid.tiles_per_split > grid.col_tiles


CASES = {  # name: (kernel config, samples, classes, proxies per class, dim, field kwargs)
    "padded_dim24": (SMALL, 40, 10, 4, 24, dict(alpha=3.0, delta_att=0.2, delta_rep=0.2)),
    "alpha6_deltas_dim48": (SPLIT_TAIL, 30, 8, 5, 48, dict(alpha=6.0, delta_att=0.25,
                                                     delta_rep=0.15)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_energy_and_gradients_match_float64_and_dense(case):
  config, num_samples, num_classes, per_class, dim, kwargs = CASES[case]
  rng = np.random.default_rng(len(case))
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, num_samples, num_classes,
                                                               per_class, dim)
  # Padding rows (label -1) with arbitrary content contribute nothing.
  embeddings = np.concatenate([embeddings, rng.normal(size=(5, dim)).astype(np.float32)])
  labels = np.concatenate([labels, -np.ones(5, np.int32)])
  got = energy_and_grads(embeddings, labels, proxies, proxy_labels, method="pallas",
                         kernel_config=config, **kwargs)
  want = field_reference.energy_and_grad(embeddings[:num_samples], labels[:num_samples],
                                         proxies, proxy_labels, **kwargs)
  assert_matches_reference((got[0], got[1][:num_samples], got[2]), want)
  assert np.all(got[1][num_samples:] == 0)
  dense = energy_and_grads(embeddings, labels, proxies, proxy_labels, method="dense", **kwargs)
  assert_matches_reference(got, dense)


@pytest.mark.parametrize("method", ["pallas", "pallas_screen"])
def test_collapsed_points_are_exact(method):
  """All points within delta of each other: every block is flagged and evaluated."""
  rng = np.random.default_rng(5)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 40, 6, 4, 24, spread=0.02)
  embeddings[:, 0] += 10.0  # one direction for all: every pair within delta
  proxies[:, 0] += 10.0
  unit = np.concatenate([embeddings, proxies])
  unit /= np.linalg.norm(unit, axis=1, keepdims=True)
  assert np.linalg.norm(unit[:, None] - unit[None], axis=-1).max() < 0.2
  kwargs = dict(alpha=3.0, delta_att=0.2, delta_rep=0.2)
  got = energy_and_grads(embeddings, labels, proxies, proxy_labels, method=method,
                         kernel_config=SMALL, **kwargs)
  want = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels, **kwargs)
  assert_matches_reference(got, want)


def energy_and_grads(embeddings, labels, proxies, proxy_labels, method,
                     kernel_config=pallas_field.DEFAULT_CONFIG, **field):
  """U and its gradients on ``method``'s path (the kernels in Pallas' interpreter)."""
  execution = (EnergyExecution("dense") if method == "dense" else
               EnergyExecution(method, kernel_config=kernel_config, interpret=True))
  fn = jax.jit(jax.value_and_grad(
      lambda e, p: potential_energy(e, labels, p, proxy_labels, execution=execution, **field),
      argnums=(0, 1)))
  energy, (grad_emb, grad_prox) = fn(embeddings, proxies)
  return float(energy), np.asarray(grad_emb), np.asarray(grad_prox)


def test_sharded_over_eight_devices_matches_float64():
  assert jax.device_count() == 8, "tests/conftest.py sets 8 fake CPU devices"
  rng = np.random.default_rng(8)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 40, 20, 4, 16)
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
  proxy_sharding = jax.NamedSharding(mesh, jax.P("data"))
  replicated = jax.NamedSharding(mesh, jax.P())
  fn = jax.jit(jax.value_and_grad(
      lambda e, p: potential_energy(e, labels, p, proxy_labels, execution=EnergyExecution(
          "pallas", mesh=mesh, kernel_config=SPLIT_TAIL, interpret=True)),
      argnums=(0, 1)), in_shardings=(replicated, proxy_sharding),
      out_shardings=(replicated, (replicated, proxy_sharding)))
  energy, (grad_emb, grad_prox) = fn(embeddings, proxies)
  want = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels, 3.0, 0.2, 0.2)
  assert_matches_reference((float(energy), np.asarray(grad_emb), np.asarray(grad_prox)), want)


def test_kernel_methods_need_cuda_or_the_interpreter():
  points = jnp.eye(4, 3)
  with pytest.raises(ValueError, match="CUDA"):
    potential_energy(points, jnp.arange(4), execution=EnergyExecution("pallas"))


def test_bad_kernel_config_is_named():
  with pytest.raises(ValueError, match="screen_cols"):
    pallas_field.KernelConfig(screen_cols=48).validate()
  with pytest.raises(ValueError, match="exact_rows"):
    pallas_field.KernelConfig(exact_rows=64).validate()


def cuda_lowering_context():
  """An abstract H100 for lowering without a GPU (jax >= 0.11 asks for one; older jax not)."""
  device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132,
                                       platform="gpu")
  try:
    mesh = jax.sharding.AbstractMesh((1,), ("lowering",), (jax.sharding.AxisType.Auto,),
                                     abstract_device=device)
  except TypeError:  # jax without abstract devices lowers Pallas Triton without one
    return contextlib.nullcontext()
  return jax.sharding.use_abstract_mesh(mesh)


@pytest.mark.parametrize("num_points, dim, shards, unpulled_from",
                         [(1600, 512, 1, None), (22736, 384, 1, None), (5000, 512, 4, None),
                          (1600, 512, 1, 100)])
def test_kernels_lower_to_triton_for_cuda(num_points, dim, shards, unpulled_from):
  """The default kernels lower to two Triton custom calls at CUB and SOP sizes, for one row
  shard of several (no triangle; row_start traced) and without proxy self-attraction."""
  field = FieldParams()
  layout = pallas_field.kernel_layout(num_points, shards, pallas_field.DEFAULT_CONFIG)
  points = jax.ShapeDtypeStruct((layout.padded_size, dim), jnp.float32)
  labels = jax.ShapeDtypeStruct((layout.padded_size,), jnp.int32)
  row_start = jax.ShapeDtypeStruct((), jnp.int32)

  def energy_and_grad(points, labels, row_start):
    return pallas_field.pallas_energy_and_grad(points, labels, row_start, layout, field,
                                               unpulled_from=unpulled_from)

  with cuda_lowering_context():
    lowered = jax.jit(energy_and_grad).trace(points, labels, row_start).lower(
        lowering_platforms=("cuda",))
  text = lowered.as_text()
  assert text.count("__gpu$xla.gpu.triton") == 2
  assert "pfml_field_screen" in text and "pfml_field_exact" in text


@pytest.mark.parametrize("method", ["pallas", "pallas_screen"])
def test_without_proxy_self_attraction_matches_float64(method):
  """The kernels leave same-class proxy pairs out like the float64 reference."""
  rng = np.random.default_rng(11)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 30, 6, 4, 24, spread=0.4)
  kwargs = dict(alpha=3.0, delta_att=0.2, delta_rep=0.3, proxy_self_attraction=False)
  got = energy_and_grads(embeddings, labels, proxies, proxy_labels, method=method,
                         kernel_config=SMALL, **kwargs)
  want = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels, **kwargs)
  assert_matches_reference(got, want)
  with_term = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels,
                                              **dict(kwargs, proxy_self_attraction=True))
  assert abs(with_term[0] - want[0]) > 1e-3 * abs(want[0])  # the term matters here
