"""Proxy Anchor against a float64 NumPy transcription of the paper and pytorch-metric-learning.

Batches (and proxies) are padded to static shapes, see baseline_support.py.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.losses.proxy_anchor import proxy_anchor_loss
from tests.losses.baseline_support import (assert_all_padding_gives_zero, assert_matches,
                                           assert_proxy_loss_matches_float64,
                                           assert_registry_proxy_loss_runs_on_bfloat16,
                                           make_padded_proxy_loss, proxy_batch)

HPARAMS = dict(alpha=32.0, margin=0.1)


def reference_loss(embeddings, labels, proxies, proxy_labels, alpha, margin):
  """Kim et al. (2020), proxy by proxy, in float64; rows / proxies with label < 0 are ignored."""
  x = embeddings[labels >= 0] / np.linalg.norm(embeddings[labels >= 0], axis=1, keepdims=True)
  x_labels = labels[labels >= 0]
  positive_terms, negative_terms = [], []
  for proxy, proxy_label in zip(proxies, proxy_labels):
    if proxy_label < 0:
      continue
    similarity = x @ (proxy / np.linalg.norm(proxy))
    positives = similarity[x_labels == proxy_label]
    negatives = similarity[x_labels != proxy_label]
    if len(positives):
      positive_terms.append(np.log(1 + np.sum(np.exp(-alpha * (positives - margin)))))
    negative_terms.append(np.log(1 + np.sum(np.exp(alpha * (negatives + margin)))))
  return (sum(positive_terms) / max(len(positive_terms), 1)
          + sum(negative_terms) / max(len(negative_terms), 1))


padded_loss_and_grads = make_padded_proxy_loss(proxy_anchor_loss, HPARAMS)


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
  reference = pml_losses.ProxyAnchorLoss(num_classes, 8, **HPARAMS)  # also its defaults
  reference.proxies.data = torch.tensor(proxies)
  torch_embeddings = torch.tensor(embeddings, requires_grad=True)
  want_value = reference(torch_embeddings, torch.tensor(labels, dtype=torch.long))
  want_value.backward()
  got, padding_grads = padded_loss_and_grads(rng, embeddings, labels, proxies, proxy_labels)
  assert_matches(got, (want_value.item(), torch_embeddings.grad.numpy(),
                       reference.proxies.grad.numpy()))
  assert np.all(padding_grads == 0)


def test_all_padding_gives_zero_and_zero_gradients():
  assert_all_padding_gives_zero(padded_loss_and_grads)


def test_registry_builds_and_runs_on_bfloat16():
  proxies = assert_registry_proxy_loss_runs_on_bfloat16("proxy_anchor", reference_loss, HPARAMS,
                                                        300)
  # kaiming_normal with torch's fan_out = size(0) = num_classes, as the reference code:
  # entries of variance 2 / num_classes.
  assert float(jnp.mean(proxies**2)) == pytest.approx(2 / 300, rel=0.05)
