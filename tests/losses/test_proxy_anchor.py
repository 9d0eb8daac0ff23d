"""Proxy Anchor against a float64 NumPy transcription of the paper and pytorch-metric-learning.

Every batch is padded to a fixed number of rows (padding rows: label -1, random values) and
proxies to a fixed count (label -1), as a trainer does for static shapes; so one compilation
serves all sizes of a test and padding is exercised everywhere.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.losses import make_loss
from pfml_jax.losses.proxy_anchor import proxy_anchor_loss

HPARAMS = dict(alpha=32.0, margin=0.1)
ROWS, PROXY_ROWS = 112, 48  # every batch / proxy set is padded to these sizes


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


def numeric_gradient(fn, x, step=1e-6):
  """Central differences of the float64 function fn at x."""
  grad = np.zeros_like(x)
  for index in np.ndindex(x.shape):
    up, down = x.copy(), x.copy()
    up[index] += step
    down[index] -= step
    grad[index] = (fn(up) - fn(down)) / (2 * step)
  return grad


def batch(rng, num_samples, num_classes, dim, proxies_per_class=1, spread=0.8):
  """Clustered embeddings; class num_classes - 1 has one sample, a few classes may have none."""
  centres = rng.normal(size=(num_classes, dim))
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)
  labels = rng.integers(0, num_classes - 1, num_samples)
  labels[0] = num_classes - 1
  embeddings = 2 * (centres[labels] + spread * rng.normal(size=(num_samples, dim)) / np.sqrt(dim))
  proxy_labels = np.repeat(np.arange(num_classes), proxies_per_class)
  proxies = rng.normal(size=(len(proxy_labels), dim)) * np.sqrt(2.0 / dim)
  return embeddings, labels.astype(np.int32), proxies, proxy_labels.astype(np.int32)


def padded(rng, rows, labels, total):
  """rows with padding rows (label -1, random values) interleaved up to total; their places."""
  places = np.sort(rng.choice(total, len(labels), replace=False))
  out = rng.normal(size=(total, rows.shape[1]))
  out[places] = rows
  out_labels = -np.ones(total, np.int32)
  out_labels[places] = labels
  return out, out_labels, places


@functools.partial(jax.jit, static_argnames=tuple(HPARAMS))
def loss_and_grads(embeddings, labels, proxies, proxy_labels, **hparams):
  return jax.value_and_grad(proxy_anchor_loss, argnums=(0, 2))(
      embeddings, labels, proxies, proxy_labels, **hparams)


def padded_loss_and_grads(rng, embeddings, labels, proxies, proxy_labels):
  """The JAX loss on a padded batch; gradients of the real rows and proxies, and of padding."""
  emb, emb_labels, places = padded(rng, embeddings, labels, ROWS)
  num_padding = PROXY_ROWS - len(proxies)
  prox = np.concatenate([proxies, rng.normal(size=(num_padding, proxies.shape[1]))])
  prox_labels = np.pad(proxy_labels, (0, num_padding), constant_values=-1)
  value, (grad_emb, grad_prox) = loss_and_grads(
      jnp.asarray(emb, jnp.float32), emb_labels, jnp.asarray(prox, jnp.float32), prox_labels,
      **HPARAMS)
  assert value.dtype == jnp.float32
  grad_emb, grad_prox = np.asarray(grad_emb, np.float64), np.asarray(grad_prox, np.float64)
  padding_grads = np.concatenate([np.delete(grad_emb, places, axis=0).ravel(),
                                  grad_prox[len(proxies):].ravel()])
  return (float(value), grad_emb[places], grad_prox[:len(proxies)]), padding_grads


def assert_matches(got, want, value_rtol=1e-5, grad_tol=1e-4):
  """Value to value_rtol; gradients to grad_tol of the largest reference element."""
  grads = np.concatenate([g.ravel() for g in got[1:]])
  want_grads = np.concatenate([g.ravel() for g in want[1:]])
  assert got[0] == pytest.approx(want[0], rel=value_rtol)
  assert np.max(np.abs(grads - want_grads)) <= grad_tol * np.max(np.abs(want_grads))


@pytest.mark.parametrize("sizes", [(10, 4, 1), (24, 8, 1), (32, 8, 2)])
def test_matches_float64_reference(sizes):
  num_samples, num_classes, per_class = sizes
  rng = np.random.default_rng(num_samples)
  embeddings, labels, proxies, proxy_labels = batch(rng, num_samples, num_classes, 8, per_class)
  got, padding_grads = padded_loss_and_grads(rng, embeddings, labels, proxies, proxy_labels)
  loss = functools.partial(reference_loss, **HPARAMS)
  want = (loss(embeddings, labels, proxies, proxy_labels),
          numeric_gradient(lambda e: loss(e, labels, proxies, proxy_labels), embeddings),
          numeric_gradient(lambda p: loss(embeddings, labels, p, proxy_labels), proxies))
  assert_matches(got, want)
  assert np.all(padding_grads == 0)


@pytest.mark.parametrize("sizes", [(16, 6), (64, 20), (100, 40)])
def test_matches_pytorch_metric_learning(sizes):
  torch = pytest.importorskip("torch", reason="pytorch-metric-learning needs torch")
  pml_losses = pytest.importorskip("pytorch_metric_learning.losses",
                                   reason="pytorch-metric-learning is not installed")
  num_samples, num_classes = sizes
  rng = np.random.default_rng(100 + num_samples)
  embeddings, labels, proxies, proxy_labels = batch(rng, num_samples, num_classes, 8)
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
  rng = np.random.default_rng(8)
  _, _, proxies, proxy_labels = batch(rng, 4, 4, 8)
  got, padding_grads = padded_loss_and_grads(rng, np.zeros((0, 8)), np.zeros(0, np.int32),
                                             proxies, proxy_labels)
  assert got[0] == 0 and np.all(got[2] == 0) and np.all(padding_grads == 0)


def test_registry_builds_and_runs_on_bfloat16():
  loss = make_loss("proxy_anchor")
  assert loss.hparams == HPARAMS and loss.proxies_per_class == 1
  proxies = loss.init_proxies(jax.random.key(0), 300, 16)
  assert proxies.shape == (300, 16) and proxies.dtype == jnp.float32
  # kaiming_normal with fan_out = dim, as the reference code: entries of variance 2 / dim.
  assert float(jnp.mean(proxies**2)) == pytest.approx(2 / 16, rel=0.05)
  embeddings = jax.random.normal(jax.random.key(1), (8, 16))
  labels = jnp.array([0, 0, 1, 1, 2, 3, 299, -1])
  fn = jax.jit(jax.value_and_grad(lambda e, p: loss(e, labels, p, loss.proxy_labels(300))))
  value, grad = fn(embeddings.astype(jnp.bfloat16), proxies)
  assert value.dtype == jnp.float32 and grad.dtype == jnp.bfloat16
  assert np.all(np.isfinite(np.asarray(grad, np.float32)))
  want = reference_loss(np.asarray(embeddings.astype(jnp.bfloat16), np.float64),
                        np.asarray(labels), np.asarray(proxies, np.float64), np.arange(300),
                        **HPARAMS)
  assert float(value) == pytest.approx(want, rel=1e-5)
  with pytest.raises(ValueError, match="proxies_per_class"):
    make_loss("proxy_anchor", proxies_per_class=0)
