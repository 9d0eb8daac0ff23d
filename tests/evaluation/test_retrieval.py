"""Retrieval metrics against float64 brute force; backends, sharding and forms agree exactly."""

import functools

import jax
import numpy as np
import pytest

from pfml_jax.evaluation import faiss_ranks, jax_ranks, retrieval
from pfml_jax.evaluation import retrieval_metrics, retrieval_metrics_qg
from pfml_jax.evaluation.ranking_problem import make_problem
from pfml_jax.numerics import unit_rows
from tests.evaluation import retrieval_reference

BACKENDS = ["jax", "faiss"]


def lattice_set(rng, num_classes, max_class_size, dim=16):
  """Integer vectors of norm exactly 8 (entries -3..3): every cosine is a multiple of 1/64,
  exact in float32 whatever the summation order, so exact ties abound between distinct items.
  Classes are coordinate permutations and sign flips of a centre. Adds singleton classes,
  duplicate rows (also scaled by 2, same and other class) and an all-zero row."""
  def sphere_point():
    while True:
      x = rng.integers(-3, 4, dim)
      if x @ x == 64:
        return x
  rows, labels = [], []
  for label, size in enumerate(rng.integers(1, max_class_size + 1, num_classes)):
    centre = sphere_point()
    for _ in range(size):
      member = centre.copy()
      swap = rng.choice(dim, 4, replace=False)
      member[swap[:2]], member[swap[2:]] = centre[swap[2:]], centre[swap[:2]]
      member[rng.integers(dim)] *= -1
      rows.append(member)
      labels.append(label)
  x, labels = np.array(rows, np.float32), np.array(labels)
  source, target = rng.choice(len(x), (2, 8), replace=False)
  x[target] = x[source] * np.array([1, 2] * 4, np.float32)[:, None]
  x[rng.integers(len(x))] = 0.0
  return x, labels


def gaussian_set(rng, num_items, num_classes, dim=32):
  """Continuous clustered embeddings with singletons and exact duplicate rows."""
  labels = rng.integers(0, num_classes, num_items)
  labels[:3] = num_classes + np.arange(3)
  x = rng.normal(size=(num_classes + 3, dim))[labels] + rng.normal(size=(num_items, dim))
  x[rng.choice(num_items, 6, replace=False)] = x[rng.choice(num_items, 6, replace=False)]
  return x.astype(np.float32), labels


def assert_same_metrics(got, want):
  assert got.keys() == want.keys()
  for name in want:
    assert got[name] == pytest.approx(want[name], rel=1e-12, abs=1e-12), name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["lattice", "gaussian"])
def test_leave_one_out_matches_float64_reference(backend, kind):
  rng = np.random.default_rng(0)
  x, labels = lattice_set(rng, 40, 7) if kind == "lattice" else gaussian_set(rng, 150, 30)
  ks = (1, 2, 4, 8, 16, len(x) + 3)
  got = retrieval_metrics(x, labels, ks, backend=backend)
  want = retrieval_reference.metrics(x, labels, x, labels, ks, leave_one_out=True)
  assert got["num_excluded_queries"] > 0  # singleton classes were excluded and counted
  assert_same_metrics(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_query_gallery_matches_float64_reference(backend):
  rng = np.random.default_rng(1)
  x, labels = lattice_set(rng, 30, 8)
  queries = rng.random(len(x)) < 0.4
  ks = (1, 3, 10)
  got = retrieval_metrics_qg(x[queries], labels[queries], x[~queries], labels[~queries], ks,
                             backend=backend)
  want = retrieval_reference.metrics(x[queries], labels[queries], x[~queries], labels[~queries],
                                     ks, leave_one_out=False)
  assert_same_metrics(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_identical_items_are_ranked_by_index(backend):
  """All items equal: every similarity ties, so only the index rule decides the order."""
  labels = np.array([0, 1, 0, 1, 1, 2, 0, 2, 1, 0])
  x = np.ones((len(labels), 4), np.float32)
  for ks in [(1,), (1, 2, 9)]:
    got = retrieval_metrics(x, labels, ks, backend=backend)
    assert_same_metrics(got, retrieval_reference.metrics(x, labels, x, labels, ks, True))


@pytest.mark.parametrize("ks", [(1,), (2, 5), (1, 10, 100)])
def test_backends_return_identical_ranks(ks):
  """Same ranks, hence the same metrics: including ties across faiss's cut-off."""
  rng = np.random.default_rng(2)
  x, labels = lattice_set(rng, 50, 9)
  units = unit_rows(x, "x", zero_rows="keep", dtype=np.float32)
  problem = make_problem(units, labels, units, labels, np.arange(len(x), dtype=np.int32), ks)
  from_jax = jax_ranks.relevant_ranks(problem)
  np.testing.assert_array_equal(faiss_ranks.relevant_ranks(problem, chunk_rows=64), from_jax)
  assert from_jax.shape == (len(x), problem.width)


def test_query_gallery_equals_leave_one_out_without_self():
  """Leave-one-out = each item querying a gallery of all the others, averaged."""
  rng = np.random.default_rng(3)
  x, labels = lattice_set(rng, 12, 5)
  ks = (1, 2, 4)
  per_query = []
  for i in range(len(x)):
    others = np.arange(len(x)) != i
    if np.any(labels[others] == labels[i]):
      per_query.append(retrieval_metrics_qg(x[i:i + 1], labels[i:i + 1], x[others],
                                            labels[others], ks, backend="jax"))
  leave_one_out = retrieval_metrics(x, labels, ks, backend="jax")
  assert leave_one_out["num_queries"] == len(per_query)
  for name in ["map@r", "r_precision"] + [f"recall@{k}" for k in ks]:
    assert leave_one_out[name] == pytest.approx(np.mean([m[name] for m in per_query]), rel=1e-12)


def test_sharded_over_eight_devices_equals_one_device():
  assert jax.device_count() == 8, "tests/conftest.py sets 8 CPU devices"
  rng = np.random.default_rng(4)
  x, labels = gaussian_set(rng, 203, 40)
  one_device = jax.make_mesh((1,), ("queries",), devices=jax.devices()[:1],
                             axis_types=(jax.sharding.AxisType.Explicit,))
  ks = (1, 4, 50)
  # A tiny block forces several blocks per device and a padded last block.
  small_blocks = functools.partial(jax_ranks.relevant_ranks, block_bytes=8 * 4 * len(x))
  sharded = retrieval_metrics(x, labels, ks, backend=small_blocks)
  single = retrieval_metrics(x, labels, ks, backend=functools.partial(small_blocks,
                                                                        mesh=one_device))
  assert sharded == single
  assert_same_metrics(sharded, retrieval_reference.metrics(x, labels, x, labels, ks, True))


def test_auto_backend_follows_the_documented_cpu_rule_and_agrees():
  rng = np.random.default_rng(5)
  x, labels = lattice_set(rng, 20, 4)
  units = unit_rows(x, "x", zero_rows="keep", dtype=np.float32)
  for ks, want in [((1, 2), "faiss"), ((1, 100), "jax")]:
    problem = make_problem(units, labels, units, labels, np.arange(len(x), dtype=np.int32), ks)
    assert retrieval.auto_backend(problem) == want
    auto = retrieval_metrics(x, labels, ks)
    assert auto == retrieval_metrics(x, labels, ks, backend="jax")
    assert auto == retrieval_metrics(x, labels, ks, backend="faiss")


@pytest.mark.parametrize("call, message", [
    (lambda x, y: retrieval_metrics(x[:, :, None], y), "non-empty \\(N, E\\)"),
    (lambda x, y: retrieval_metrics(np.where(x == x[3, 0], np.nan, x), y), "NaN or inf"),
    (lambda x, y: retrieval_metrics(x, y[:-1]), "one per embedding row"),
    (lambda x, y: retrieval_metrics(x, y - 1), "padding row"),
    (lambda x, y: retrieval_metrics(x, y.astype(float)), "must be integers"),
    (lambda x, y: retrieval_metrics(x, y, ks=(0, 1)), "positive integers"),
    (lambda x, y: retrieval_metrics(x, y, backend="gpu"), "Unknown evaluation backend"),
    (lambda x, y: retrieval_metrics(x, np.arange(len(y))), "classes of >= 2 items"),
    (lambda x, y: retrieval_metrics(x[:1], y[:1]), "at least two items"),
    (lambda x, y: retrieval_metrics_qg(x, y, x[:, :3], y), "same model"),
])
def test_bad_inputs_say_what_to_do(call, message):
  x = np.random.default_rng(6).normal(size=(10, 4)).astype(np.float32)
  y = np.arange(10) % 3
  with pytest.raises(ValueError, match=message):
    call(x, y)
