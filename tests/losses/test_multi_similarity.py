"""Multi-Similarity (with its mining) against float64 NumPy code of the paper's formulas and
pytorch-metric-learning's MultiSimilarityMiner + MultiSimilarityLoss.

Batches are padded to static shapes, see baseline_support.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.losses import make_loss
from pfml_jax.losses.multi_similarity import multi_similarity_loss
from tests.losses.baseline_support import (assert_matches, batch, batches_without_pairs,
                                           make_padded_pair_loss, numeric_gradient, separated_batch)

HPARAMS = dict(alpha=2.0, beta=50.0, base=0.5, epsilon=0.1)


def reference_loss(embeddings, labels, alpha, beta, base, epsilon):
  """Wang et al. (2019), anchor by anchor, in float64; rows with label < 0 are ignored."""
  x = embeddings[labels >= 0] / np.linalg.norm(embeddings[labels >= 0], axis=1, keepdims=True)
  x_labels = labels[labels >= 0]
  total = 0.0
  for i in range(len(x)):
    similarity = x @ x[i]
    others = np.arange(len(x)) != i
    positives = similarity[others & (x_labels == x_labels[i])]
    negatives = similarity[x_labels != x_labels[i]]
    if not len(positives) or not len(negatives):
      continue  # nothing to mine against
    kept_negatives = negatives[negatives + epsilon > positives.min()]
    kept_positives = positives[positives - epsilon < negatives.max()]
    total += np.log(1 + np.sum(np.exp(-alpha * (kept_positives - base)))) / alpha
    total += np.log(1 + np.sum(np.exp(beta * (kept_negatives - base)))) / beta
  return total / max(len(x), 1)


padded_loss_and_grad = make_padded_pair_loss(multi_similarity_loss, HPARAMS)


@pytest.mark.parametrize("sizes", [(10, 4), (24, 8), (32, 6)])
def test_matches_float64_paper_formula(sizes):
  num_samples, num_classes = sizes
  rng = np.random.default_rng(num_samples)
  embeddings, labels = batch(rng, num_samples, num_classes, 8)
  value, grad, padding_grad = padded_loss_and_grad(rng, embeddings, labels)
  loss = functools.partial(reference_loss, **HPARAMS)
  assert_matches((value, grad), (loss(embeddings, labels),
                                 numeric_gradient(lambda e: loss(e, labels), embeddings)))
  assert np.all(padding_grad == 0)


@pytest.mark.parametrize("sizes", [(16, 6), (64, 20), (100, 40)])
def test_matches_pytorch_metric_learning(sizes):
  torch = pytest.importorskip("torch", reason="pytorch-metric-learning needs torch")
  pml_losses = pytest.importorskip("pytorch_metric_learning.losses",
                                   reason="pytorch-metric-learning is not installed")
  pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
  num_samples, num_classes = sizes
  rng = np.random.default_rng(100 + num_samples)
  embeddings, labels = batch(rng, num_samples, num_classes, 8)
  # Their defaults are these values (the loss names lambda "base").
  miner = pml_miners.MultiSimilarityMiner(epsilon=HPARAMS["epsilon"])
  reference = pml_losses.MultiSimilarityLoss(HPARAMS["alpha"], HPARAMS["beta"], HPARAMS["base"])
  torch_embeddings = torch.tensor(embeddings, requires_grad=True)
  torch_labels = torch.tensor(labels, dtype=torch.long)
  pairs = miner(torch_embeddings, torch_labels)
  # pytorch-metric-learning returns 0 when at most one pair of each kind is mined; not so here.
  assert len(pairs[0]) > 1 and len(pairs[2]) > 1
  want_value = reference(torch_embeddings, torch_labels, pairs)
  want_value.backward()
  value, grad, padding_grad = padded_loss_and_grad(rng, embeddings, labels)
  assert_matches((value, grad), (want_value.item(), torch_embeddings.grad.numpy()))
  assert np.all(padding_grad == 0)


@pytest.mark.parametrize("case", ["one_class", "singletons", "padding_only", "nothing_mined"])
def test_no_pairs_gives_zero_and_zero_gradient(case):
  # nothing_mined: every positive beats every negative by > epsilon.
  embeddings, labels = {**batches_without_pairs(), "nothing_mined": separated_batch(4, 3)}[case]
  value, grad, padding_grad = padded_loss_and_grad(np.random.default_rng(3), embeddings, labels)
  assert value == 0 and np.all(grad == 0) and np.all(padding_grad == 0)
  assert reference_loss(embeddings, labels, **HPARAMS) == 0


def test_registry_builds_and_runs_on_bfloat16():
  loss = make_loss("multi_similarity")
  assert loss.hparams == HPARAMS and loss.proxies_per_class == 0
  proxies = loss.init_proxies(jax.random.key(0), 10, 16)
  assert proxies.shape == (0, 16) and loss.proxy_labels(10).shape == (0,)
  embeddings = jax.random.normal(jax.random.key(1), (12, 16))
  labels = jnp.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 4, -1, -1])
  fn = jax.jit(jax.value_and_grad(lambda e: loss(e, labels, proxies, loss.proxy_labels(10))))
  value, grad = fn(embeddings.astype(jnp.bfloat16))
  assert value.dtype == jnp.float32 and grad.dtype == jnp.bfloat16
  assert np.all(np.isfinite(np.asarray(grad, np.float32)))
  want = reference_loss(np.asarray(embeddings.astype(jnp.bfloat16), np.float64),
                        np.asarray(labels), **HPARAMS)
  assert float(value) == pytest.approx(want, rel=1e-5)
  with pytest.raises(ValueError, match="no proxies"):
    make_loss("multi_similarity", proxies_per_class=2)
