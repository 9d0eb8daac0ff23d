"""PFML's energy floor: pair counts against float64 enumeration, a bound, tight when settled."""

import itertools

import jax
import numpy as np
import pytest

from pfml_jax.losses import EnergyExecution, energy_floor, make_loss, potential_energy
from tests.losses import field_reference

FIELD = dict(alpha=3.0, delta_att=0.15, delta_rep=0.25)


def enumerated_floor(labels, alpha, delta_att, delta_rep, proxies_from=None):
  """The floor in float64 by visiting every ordered pair of valid points; same-label pairs of
  two points at or after ``proxies_from`` (proxies without self-attraction) add nothing."""
  kept = [(int(label), index) for index, label in enumerate(labels) if label >= 0]
  unpulled = lambda a, b: proxies_from is not None and min(a, b) >= proxies_from
  total = 0.0
  for (label_a, a), (label_b, b) in itertools.permutations(kept, 2):
    if label_a != label_b:
      total += delta_rep ** -alpha
    elif not unpulled(a, b):
      total += -delta_att ** -alpha
  return total


@pytest.mark.parametrize("with_proxies", [True, False])
def test_floor_counts_every_ordered_pair(with_proxies):
  rng = np.random.default_rng(0)
  labels = rng.integers(-1, 6, 40).astype(np.int32)  # -1: padding rows
  proxy_labels = np.repeat(np.arange(7, dtype=np.int32), 3)
  proxy_labels[-2:] = -1  # padding proxies
  everything = np.concatenate([labels, proxy_labels]) if with_proxies else labels
  got = jax.jit(lambda l, p: energy_floor(l, p, **FIELD))(
      labels, proxy_labels if with_proxies else None)
  assert got.dtype == np.float32
  assert float(got) == pytest.approx(enumerated_floor(everything, **FIELD), rel=1e-6)


def test_floor_bounds_the_energy_from_below():
  rng = np.random.default_rng(1)
  embeddings = rng.normal(size=(30, 16))
  labels = rng.integers(0, 4, 30)
  proxies = rng.normal(size=(8, 16))
  proxy_labels = np.repeat(np.arange(4), 2)
  reference, _, _ = field_reference.energy_and_grad(embeddings, labels, proxies, proxy_labels,
                                                    **FIELD)
  floor = float(energy_floor(labels, proxy_labels, **FIELD))
  energy = float(potential_energy(embeddings.astype(np.float32), labels,
                                  proxies.astype(np.float32), proxy_labels, **FIELD))
  assert energy - floor == pytest.approx(reference - enumerated_floor(
      np.concatenate([labels, proxy_labels]), **FIELD), rel=1e-4)
  assert energy - floor > 0


def test_floor_without_proxy_self_attraction_leaves_out_same_class_proxy_pairs():
  rng = np.random.default_rng(3)
  labels = rng.integers(-1, 5, 30).astype(np.int32)
  proxy_labels = np.repeat(np.arange(6, dtype=np.int32), 4)
  proxy_labels[-3:] = -1
  got = energy_floor(labels, proxy_labels, proxy_self_attraction=False, **FIELD)
  want = enumerated_floor(np.concatenate([labels, proxy_labels]), **FIELD,
                          proxies_from=len(labels))
  assert float(got) == pytest.approx(want, rel=1e-6)
  assert want > enumerated_floor(np.concatenate([labels, proxy_labels]), **FIELD)


@pytest.mark.parametrize("self_attraction", [True, False])
@pytest.mark.parametrize("method", ["dense", "block_sparse"])
def test_floor_is_reached_by_a_settled_field(method, self_attraction):
  """Classes on orthogonal axes (sqrt(2) apart), members within delta_att: U equals the floor."""
  rng = np.random.default_rng(2)
  num_classes, dim = 12, 32
  labels = np.repeat(np.arange(num_classes), 6).astype(np.int32)
  proxy_labels = np.repeat(np.arange(num_classes), 2).astype(np.int32)

  def settled(point_labels):
    points = np.eye(dim)[point_labels] + 0.005 * rng.normal(size=(len(point_labels), dim))
    return points.astype(np.float32)

  switch = dict(FIELD, proxy_self_attraction=self_attraction)
  energy = potential_energy(settled(labels), labels, settled(proxy_labels), proxy_labels,
                            execution=EnergyExecution(method), **switch)
  floor = energy_floor(labels, proxy_labels, **switch)
  assert float(energy) == pytest.approx(float(floor), rel=1e-6)


def test_only_pfml_has_a_floor():
  labels, proxy_labels = np.array([0, 0, 1]), np.array([0, 1])
  assert make_loss("pfml").floor(labels, proxy_labels) is not None
  assert make_loss("triplet").floor(labels, proxy_labels) is None
