"""The block-sparse path: tiling, chunking, collapse fallback and sharding all keep it exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.losses import EnergyExecution, potential_energy
from pfml_jax.losses.block_sparse_field import BlockLayout, block_sparse_energy_and_grad
from pfml_jax.losses.dense_field import dense_energy
from pfml_jax.losses.potentials import FieldParams
from tests.losses import field_reference
from tests.losses.field_cases import assert_matches_reference, clustered_points

FIELD = FieldParams(3.0, 0.2, 0.2)


def unit_rows(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def dense_reference(points, labels):
  energy, grad = jax.value_and_grad(dense_energy)(jnp.asarray(points), jnp.asarray(labels), FIELD)
  return float(energy), np.asarray(grad)


@pytest.mark.parametrize("layout", [BlockLayout(4, 2, 3, 1), BlockLayout(8, 1, 5, 1),
                                    BlockLayout(16, 3, 1, 1)])
@pytest.mark.parametrize("collapsed", [False, True])
def test_any_tiling_matches_dense(layout, collapsed):
  rng = np.random.default_rng(layout.block)
  size = layout.padded_size
  points = rng.normal(size=(size, 6))
  if collapsed:  # every pair within delta: every block is evaluated
    points = points[:1] + 0.01 * points
  points = unit_rows(points).astype(np.float32)
  labels = rng.integers(0, 7, size).astype(np.int32)
  labels[-3:] = -1
  energy, grad = block_sparse_energy_and_grad(jnp.asarray(points), jnp.asarray(labels),
                                              jnp.int32(0), layout, FIELD)
  want_energy, want_grad = dense_reference(points, labels)
  assert float(energy) == pytest.approx(want_energy, rel=1e-5)
  np.testing.assert_allclose(grad, want_grad, atol=1e-4 * np.abs(want_grad).max())


def test_row_shards_add_up_to_the_whole():
  rng = np.random.default_rng(0)
  whole = BlockLayout(4, 2, 2, 1)
  shards = BlockLayout(4, 2, 1, 2)
  assert whole.padded_size == shards.padded_size
  points = unit_rows(rng.normal(size=(whole.padded_size, 3))).astype(np.float32)
  labels = rng.integers(0, 3, whole.padded_size).astype(np.int32)
  energy, grad = block_sparse_energy_and_grad(points, labels, jnp.int32(0), whole, FIELD)
  parts = [block_sparse_energy_and_grad(points, labels, jnp.int32(start), shards, FIELD)
           for start in (0, shards.rows_per_shard)]
  assert float(sum(p[0] for p in parts)) == pytest.approx(float(energy), rel=1e-6)
  np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), grad, rtol=1e-6, atol=1e-6)


def test_layout_pads_little():
  layout = BlockLayout.for_points(22736, shards=1, block=32, row_tile=1024)
  assert 22736 <= layout.padded_size <= 22736 * 1.01
  assert layout.blocks_per_tile * layout.block <= 1024
  sharded = BlockLayout.for_points(1000, shards=8, block=32)
  assert sharded.padded_size % 8 == 0 and sharded.padded_size >= 1000


def sharded_energy_and_grads(device_mesh, embeddings, labels, proxies, proxy_labels, mesh=None,
                             **field):
  """Energy and gradients with the proxies split over the mesh's 'data' axis (the pair rows
  too when ``mesh`` is given)."""
  execution = EnergyExecution("block_sparse", mesh=mesh)
  proxy_sharding = jax.NamedSharding(device_mesh, jax.P("data"))
  replicated = jax.NamedSharding(device_mesh, jax.P())
  fn = jax.jit(jax.value_and_grad(
      lambda e, p: potential_energy(e, labels, p, proxy_labels, execution=execution, **field),
      argnums=(0, 1)),
               in_shardings=(replicated, proxy_sharding),
               out_shardings=(replicated, (replicated, proxy_sharding)))
  energy, (grad_emb, grad_prox) = fn(embeddings, proxies)
  return float(energy), np.asarray(grad_emb), np.asarray(grad_prox)


@pytest.mark.parametrize("explicit_mesh", [True, False])
def test_sharded_over_eight_devices_equals_one(explicit_mesh):
  assert jax.device_count() == 8, "tests/conftest.py sets 8 fake CPU devices"
  rng = np.random.default_rng(8)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 40, 20, 4, 16)
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
  single = jax.jit(jax.value_and_grad(
      lambda e, p: potential_energy(e, labels, p, proxy_labels,
                                    execution=EnergyExecution("block_sparse")),
      argnums=(0, 1)))
  energy, (grad_emb, grad_prox) = single(embeddings, proxies)
  kwargs = dict(mesh=mesh) if explicit_mesh else {}
  got = sharded_energy_and_grads(mesh, embeddings, labels, proxies, proxy_labels, **kwargs)
  assert_matches_reference(got, (float(energy), np.asarray(grad_emb), np.asarray(grad_prox)),
                           energy_rtol=1e-6, grad_tol=1e-6)


def test_unnormalised_proxy_close_to_an_embedding_is_not_missed():
  """A proxy 0.9 u at distance 0.1 from the unit embedding u repels it (screen by norms)."""
  rng = np.random.default_rng(9)
  embeddings = unit_rows(rng.normal(size=(40, 16))).astype(np.float32)
  labels = np.arange(40, dtype=np.int32) % 5
  proxies = (0.9 * embeddings[:10]).astype(np.float32)
  proxy_labels = (labels[:10] + 1) % 5
  grads = lambda method: jax.value_and_grad(
      lambda e, p: potential_energy(e, labels, p, proxy_labels, normalize_proxies=False,
                                    execution=EnergyExecution(method)),
      argnums=(0, 1))(embeddings, proxies)
  (want, want_grads), (got, got_grads) = grads("dense"), grads("block_sparse")
  assert float(got) == pytest.approx(float(want), rel=1e-6)
  # The unnormalised proxies' gradients (the embeddings' are dominated by a radial force that
  # their normalisation projects away, an ill-conditioned cancellation in any float32 path).
  np.testing.assert_allclose(got_grads[1], want_grads[1],
                             atol=1e-4 * np.abs(want_grads[1]).max())


def test_sharded_without_proxy_self_attraction_matches_float64():
  """Proxies split over eight devices: the proxies' rows are still recognised as proxies."""
  rng = np.random.default_rng(12)
  embeddings, labels, proxies, proxy_labels = clustered_points(rng, 40, 10, 4, 16, spread=0.4)
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
  kwargs = dict(alpha=3.0, delta_att=0.2, delta_rep=0.3, proxy_self_attraction=False)
  got = sharded_energy_and_grads(mesh, embeddings, labels, proxies, proxy_labels, mesh=mesh,
                                 **kwargs)
  want = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels, **kwargs)
  assert_matches_reference(got, want)
