"""Normalized Softmax against float64 NumPy code of its formula and pytorch-metric-learning.

Batches (and proxies) are padded to static shapes, see baseline_support.py.
"""

import numpy as np
import pytest

from pfml_jax.losses.normalized_softmax import normalized_softmax_loss
from tests.losses.baseline_support import (assert_all_padding_gives_zero, assert_matches,
                                           assert_proxy_loss_matches_float64,
                                           assert_rows_without_proxies_ignored,
                                           assert_registry_proxy_loss_runs_on_bfloat16,
                                           make_padded_proxy_loss, proxy_batch)

HPARAMS = dict(temperature=0.05)


def reference_loss(embeddings, labels, proxies, proxy_labels, temperature):
  """Zhai & Wu (2019) in float64: mean cross-entropy of cos(x, w_c) / T, a class's probability
  being the mass of its proxies; rows / proxies with label < 0 and rows whose class has no proxy
  are ignored."""
  keep = proxy_labels >= 0
  weights = proxies[keep] / np.linalg.norm(proxies[keep], axis=1, keepdims=True)
  x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
  logits = x @ weights.T / temperature
  probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
  probabilities /= probabilities.sum(axis=1, keepdims=True)
  own = labels[:, None] == proxy_labels[keep][None, :]
  counted = (labels >= 0) & own.any(axis=1)
  return -np.mean(np.log(np.sum(probabilities * own, axis=1)[counted])) if counted.any() else 0.0


padded_loss_and_grads = make_padded_proxy_loss(normalized_softmax_loss, HPARAMS)


@pytest.mark.parametrize("sizes", [(10, 4, 1), (24, 8, 1), (32, 8, 2)])
def test_matches_float64_reference(sizes):
  assert_proxy_loss_matches_float64(padded_loss_and_grads, reference_loss, HPARAMS, sizes)


@pytest.mark.parametrize("sizes", [(16, 6), (64, 20), (100, 40)])
def test_matches_pytorch_metric_learning(sizes):
  torch = pytest.importorskip("torch", reason="pytorch-metric-learning needs torch")
  pml_losses = pytest.importorskip("pytorch_metric_learning.losses",
                                   reason="pytorch-metric-learning is not installed")
  num_samples, num_classes = sizes
  rng = np.random.default_rng(100 + num_samples)
  embeddings, labels, proxies, proxy_labels = proxy_batch(rng, num_samples, num_classes, 8)
  reference = pml_losses.NormalizedSoftmaxLoss(num_classes, 8, **HPARAMS)  # also its default
  reference.W.data = torch.tensor(proxies.T)  # it holds the class weights as (D, N)
  torch_embeddings = torch.tensor(embeddings, requires_grad=True)
  want_value = reference(torch_embeddings, torch.tensor(labels, dtype=torch.long))
  want_value.backward()
  got, padding_grads = padded_loss_and_grads(rng, embeddings, labels, proxies, proxy_labels)
  assert_matches(got, (want_value.item(), torch_embeddings.grad.numpy(),
                       reference.W.grad.numpy().T))
  assert np.all(padding_grads == 0)


def test_all_padding_gives_zero_and_zero_gradients():
  assert_all_padding_gives_zero(padded_loss_and_grads)


def test_rows_of_classes_without_proxies_count_for_nothing():
  assert_rows_without_proxies_ignored(padded_loss_and_grads, reference_loss, HPARAMS)


def test_registry_builds_and_runs_on_bfloat16():
  assert_registry_proxy_loss_runs_on_bfloat16("normalized_softmax", reference_loss, HPARAMS, 30)
