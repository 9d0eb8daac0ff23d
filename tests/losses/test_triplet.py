"""Triplet loss, semi-hard and batch-hard, against float64 NumPy code of the formulas and
pytorch-metric-learning's TripletMarginMiner("semihard") / BatchHardMiner + TripletMarginLoss.

Every batch is padded to a fixed number of rows (padding rows: label -1, random values), as a
trainer does for static shapes; so one compilation serves all sizes of a test and padding is
exercised everywhere.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.losses import make_loss
from pfml_jax.losses.triplet import triplet_loss

HPARAMS = dict(margin=0.1, mining="semi_hard")
ROWS = 112  # every batch is padded to this many rows
MININGS = ["semi_hard", "batch_hard"]


def reference_loss(embeddings, labels, margin, mining):
  """Triplet loss in float64 from explicit distances; rows with label < 0 are ignored.

  semi_hard: mean of the non-zero [d_ap - d_an + margin]_+ over triplets with
  0 < d_an - d_ap <= margin. batch_hard: mean over anchors with a positive and a negative of
  [max d_ap - min d_an + margin]_+.
  """
  x = embeddings[labels >= 0] / np.linalg.norm(embeddings[labels >= 0], axis=1, keepdims=True)
  x_labels = labels[labels >= 0]
  losses = []
  for a in range(len(x)):
    distance = np.linalg.norm(x - x[a], axis=1)
    positives = distance[(np.arange(len(x)) != a) & (x_labels == x_labels[a])]
    negatives = distance[x_labels != x_labels[a]]
    if not len(positives) or not len(negatives):
      continue
    if mining == "batch_hard":
      losses.append(max(positives.max() - negatives.min() + margin, 0.0))
      continue
    gap = negatives[None, :] - positives[:, None]  # d_an - d_ap for every (p, n)
    semi_hard_losses = margin - gap[(gap > 0) & (gap <= margin)]
    losses.extend(semi_hard_losses[semi_hard_losses > 0])
  return np.mean(losses) if losses else 0.0


def numeric_gradient(fn, x, step=1e-6):
  """Central differences of the float64 function fn at x."""
  grad = np.zeros_like(x)
  for index in np.ndindex(x.shape):
    up, down = x.copy(), x.copy()
    up[index] += step
    down[index] -= step
    grad[index] = (fn(up) - fn(down)) / (2 * step)
  return grad


def batch(rng, num_samples, num_classes, dim, spread=0.8):
  """Clustered embeddings; class num_classes - 1 has one sample, a few classes may have none."""
  centres = rng.normal(size=(num_classes, dim))
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)
  labels = rng.integers(0, num_classes - 1, num_samples)
  labels[0] = num_classes - 1
  embeddings = 2 * (centres[labels] + spread * rng.normal(size=(num_samples, dim)) / np.sqrt(dim))
  return embeddings, labels.astype(np.int32)


def padded(rng, rows, labels, total):
  """rows with padding rows (label -1, random values) interleaved up to total; their places."""
  places = np.sort(rng.choice(total, len(labels), replace=False))
  out = rng.normal(size=(total, rows.shape[1]))
  out[places] = rows
  out_labels = -np.ones(total, np.int32)
  out_labels[places] = labels
  return out, out_labels, places


@functools.partial(jax.jit, static_argnames=tuple(HPARAMS))
def loss_and_grad(embeddings, labels, **hparams):
  no_proxies = jnp.zeros((0, embeddings.shape[1]), jnp.float32)
  return jax.value_and_grad(triplet_loss)(
      embeddings, labels, no_proxies, jnp.zeros((0,), jnp.int32), **hparams)


def padded_loss_and_grad(rng, embeddings, labels, mining):
  """The JAX loss on a padded batch; the gradient of the real rows, and of the padding rows."""
  emb, emb_labels, places = padded(rng, embeddings, labels, ROWS)
  value, grad = loss_and_grad(jnp.asarray(emb, jnp.float32), emb_labels,
                              **{**HPARAMS, "mining": mining})
  assert value.dtype == jnp.float32
  grad = np.asarray(grad, np.float64)
  return float(value), grad[places], np.delete(grad, places, axis=0)


def assert_matches(value, grad, want_value, want_grad, value_rtol=1e-5, grad_tol=1e-4):
  """Value to value_rtol; gradient to grad_tol of the largest reference element."""
  assert value == pytest.approx(want_value, rel=value_rtol)
  assert np.max(np.abs(grad - want_grad)) <= grad_tol * np.max(np.abs(want_grad))


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("sizes", [(12, 4), (24, 8), (32, 6)])
def test_matches_float64_reference(sizes, mining):
  num_samples, num_classes = sizes
  rng = np.random.default_rng(num_samples)
  embeddings, labels = batch(rng, num_samples, num_classes, 8)
  value, grad, padding_grad = padded_loss_and_grad(rng, embeddings, labels, mining=mining)
  loss = functools.partial(reference_loss, margin=HPARAMS["margin"], mining=mining)
  assert loss(embeddings, labels) > 0  # some triplets are mined
  assert_matches(value, grad, loss(embeddings, labels),
                 numeric_gradient(lambda e: loss(e, labels), embeddings))
  assert np.all(padding_grad == 0)


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("sizes", [(16, 6), (64, 20), (100, 40)])
def test_matches_pytorch_metric_learning(sizes, mining):
  torch = pytest.importorskip("torch", reason="pytorch-metric-learning needs torch")
  pml_losses = pytest.importorskip("pytorch_metric_learning.losses",
                                   reason="pytorch-metric-learning is not installed")
  pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
  pml_reducers = pytest.importorskip("pytorch_metric_learning.reducers")
  num_samples, num_classes = sizes
  rng = np.random.default_rng(100 + num_samples)
  embeddings, labels = batch(rng, num_samples, num_classes, 8)
  margin = HPARAMS["margin"]
  if mining == "semi_hard":  # Proxy Anchor's Triplet baseline, reducer: mean of non-zero losses
    miner = pml_miners.TripletMarginMiner(margin, type_of_triplets="semihard")
    reference = pml_losses.TripletMarginLoss(margin=margin)
  else:  # Hermans et al. average over the anchors: the mean reducer, not its default
    miner = pml_miners.BatchHardMiner()
    reference = pml_losses.TripletMarginLoss(margin=margin, reducer=pml_reducers.MeanReducer())
  torch_embeddings = torch.tensor(embeddings, requires_grad=True)
  torch_labels = torch.tensor(labels, dtype=torch.long)
  triplets = miner(torch_embeddings, torch_labels)
  assert len(triplets[0]) > 1
  want_value = reference(torch_embeddings, torch_labels, triplets)
  want_value.backward()
  value, grad, padding_grad = padded_loss_and_grad(rng, embeddings, labels, mining=mining)
  assert_matches(value, grad, want_value.item(), torch_embeddings.grad.numpy())
  assert np.all(padding_grad == 0)


def separated_batch(num_classes, per_class, dim=8):
  """Classes far apart and tight: every negative is farther than every positive + margin."""
  centres = np.eye(dim)[:num_classes]
  labels = np.repeat(np.arange(num_classes), per_class).astype(np.int32)
  noise = 0.01 * np.random.default_rng(0).normal(size=(len(labels), dim))
  return centres[labels] + noise, labels


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("case", ["one_class", "singletons", "padding_only", "all_satisfied"])
def test_no_triplets_gives_zero_and_zero_gradient(case, mining):
  embeddings, labels = {
      "one_class": (np.random.default_rng(1).normal(size=(12, 8)), np.zeros(12, np.int32)),
      "singletons": (np.random.default_rng(2).normal(size=(6, 8)), np.arange(6, dtype=np.int32)),
      "padding_only": (np.zeros((0, 8)), np.zeros(0, np.int32)),
      "all_satisfied": separated_batch(4, 3),
  }[case]
  value, grad, padding_grad = padded_loss_and_grad(np.random.default_rng(3), embeddings, labels,
                                                   mining=mining)
  assert value == 0 and np.all(grad == 0) and np.all(padding_grad == 0)
  assert reference_loss(embeddings, labels, HPARAMS["margin"], mining) == 0


def test_registry_builds_and_runs_on_bfloat16():
  loss = make_loss("triplet")
  assert loss.hparams == HPARAMS and loss.proxies_per_class == 0
  proxies = loss.init_proxies(jax.random.key(0), 10, 16)
  assert proxies.shape == (0, 16) and loss.proxy_labels(10).shape == (0,)
  embeddings = jax.random.normal(jax.random.key(1), (12, 16))
  labels = jnp.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 4, -1, -1])
  batch_hard = make_loss("triplet", mining="batch_hard")
  for bound, mining in ((loss, "semi_hard"), (batch_hard, "batch_hard")):
    fn = jax.jit(jax.value_and_grad(lambda e: bound(e, labels, proxies, bound.proxy_labels(10))))
    value, grad = fn(embeddings.astype(jnp.bfloat16))
    assert value.dtype == jnp.float32 and grad.dtype == jnp.bfloat16
    assert np.all(np.isfinite(np.asarray(grad, np.float32)))
    want = reference_loss(np.asarray(embeddings.astype(jnp.bfloat16), np.float64),
                          np.asarray(labels), HPARAMS["margin"], mining)
    assert float(value) == pytest.approx(want, rel=1e-5)
  with pytest.raises(ValueError, match="mining"):
    make_loss("triplet", mining="hardest")(embeddings, labels, proxies, loss.proxy_labels(10))
