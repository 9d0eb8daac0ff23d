"""Triplet loss, semi-hard and batch-hard, against float64 NumPy code of the formulas and
pytorch-metric-learning's TripletMarginMiner("semihard") / BatchHardMiner + TripletMarginLoss.

Batches are padded to static shapes, see baseline_support.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.losses import make_loss
from pfml_jax.losses.triplet import triplet_loss
from tests.losses.baseline_support import (assert_matches, batch, batches_without_pairs,
                                           make_padded_pair_loss, numeric_gradient, separated_batch)

HPARAMS = dict(margin=0.1, mining="semi_hard")
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


padded_loss_and_grad = make_padded_pair_loss(triplet_loss, HPARAMS)


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("sizes", [(12, 4), (24, 8), (32, 6)])
def test_matches_float64_reference(sizes, mining):
  num_samples, num_classes = sizes
  rng = np.random.default_rng(num_samples)
  embeddings, labels = batch(rng, num_samples, num_classes, 8)
  value, grad, padding_grad = padded_loss_and_grad(rng, embeddings, labels, mining=mining)
  loss = functools.partial(reference_loss, margin=HPARAMS["margin"], mining=mining)
  assert loss(embeddings, labels) > 0  # some triplets are mined
  assert_matches((value, grad), (loss(embeddings, labels),
                                 numeric_gradient(lambda e: loss(e, labels), embeddings)))
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
  assert_matches((value, grad), (want_value.item(), torch_embeddings.grad.numpy()))
  assert np.all(padding_grad == 0)


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("case", ["one_class", "singletons", "padding_only", "all_satisfied"])
def test_no_triplets_gives_zero_and_zero_gradient(case, mining):
  # all_satisfied: every negative beyond every positive + margin.
  embeddings, labels = {**batches_without_pairs(), "all_satisfied": separated_batch(4, 3)}[case]
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
