"""Helpers shared by the baseline-loss tests (Proxy Anchor, ProxyNCA, Normalized Softmax,
Multi-Similarity, Triplet): generated batches, padding, the jitted JAX loss on a padded batch,
float64 central differences, the tolerance check, and the checks that the proxy losses share.
Each test file keeps its own float64 reference formula and pytorch-metric-learning comparison.

Every batch is padded to a fixed number of rows (padding rows: label -1, random values) and
proxies to a fixed count (label -1), as a trainer does for static shapes; so one compilation
serves all sizes of a test and padding is exercised everywhere.
"""

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.losses import make_loss

ROWS, PROXY_ROWS = 112, 48  # every batch / proxy set is padded to these sizes


def numeric_gradient(fn: Callable[[np.ndarray], float], x: np.ndarray,
                     step: float = 1e-6) -> np.ndarray:
  """Central differences of the float64 function fn at x."""
  grad = np.zeros_like(x)
  for index in np.ndindex(x.shape):
    up, down = x.copy(), x.copy()
    up[index] += step
    down[index] -= step
    grad[index] = (fn(up) - fn(down)) / (2 * step)
  return grad


def batch(rng: np.random.Generator, num_samples: int, num_classes: int, dim: int,
          spread: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
  """Clustered embeddings; class num_classes - 1 has one sample, a few classes may have none."""
  centres = rng.normal(size=(num_classes, dim))
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)
  labels = rng.integers(0, num_classes - 1, num_samples)
  labels[0] = num_classes - 1
  embeddings = 2 * (centres[labels] + spread * rng.normal(size=(num_samples, dim)) / np.sqrt(dim))
  return embeddings, labels.astype(np.int32)


def proxy_batch(rng: np.random.Generator, num_samples: int, num_classes: int, dim: int,
                proxies_per_class: int = 1, spread: float = 0.8):
  """batch(), then proxies_per_class proxies per class with entries of variance 2 / dim.

  Returns (embeddings, labels, proxies, proxy_labels).
  """
  embeddings, labels = batch(rng, num_samples, num_classes, dim, spread)
  proxy_labels = np.repeat(np.arange(num_classes), proxies_per_class)
  proxies = rng.normal(size=(len(proxy_labels), dim)) * np.sqrt(2.0 / dim)
  return embeddings, labels, proxies, proxy_labels.astype(np.int32)


def separated_batch(num_classes: int, per_class: int,
                    dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
  """Classes far apart (one-hot centres) and tight (noise 0.01): no positive is near a negative."""
  centres = np.eye(dim)[:num_classes]
  labels = np.repeat(np.arange(num_classes), per_class).astype(np.int32)
  noise = 0.01 * np.random.default_rng(0).normal(size=(len(labels), dim))
  return centres[labels] + noise, labels


def batches_without_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Batches where no anchor has both a positive and a negative, by name: "one_class",
  "singletons", "padding_only"."""
  return {
      "one_class": (np.random.default_rng(1).normal(size=(12, 8)), np.zeros(12, np.int32)),
      "singletons": (np.random.default_rng(2).normal(size=(6, 8)), np.arange(6, dtype=np.int32)),
      "padding_only": (np.zeros((0, 8)), np.zeros(0, np.int32)),
  }


def padded(rng: np.random.Generator, rows: np.ndarray, labels: np.ndarray, total: int):
  """rows with padding rows (label -1, random values) interleaved up to total; their places."""
  places = np.sort(rng.choice(total, len(labels), replace=False))
  out = rng.normal(size=(total, rows.shape[1]))
  out[places] = rows
  out_labels = -np.ones(total, np.int32)
  out_labels[places] = labels
  return out, out_labels, places


def make_padded_proxy_loss(loss_fn: Callable, hparams: dict, rows: int = ROWS,
                           proxy_rows: int = PROXY_ROWS) -> Callable:
  """padded_loss_and_grads(rng, embeddings, labels, proxies, proxy_labels) for a proxy loss.

  It runs loss_fn (jitted, hparams static) on the batch padded to rows and the proxies padded
  to proxy_rows, and returns ((value, grad of the real rows, grad of the real proxies),
  the gradients of all padding, flattened).
  """

  @functools.partial(jax.jit, static_argnames=tuple(hparams))
  def loss_and_grads(embeddings, labels, proxies, proxy_labels, **static_hparams):
    return jax.value_and_grad(loss_fn, argnums=(0, 2))(
        embeddings, labels, proxies, proxy_labels, **static_hparams)

  def padded_loss_and_grads(rng, embeddings, labels, proxies, proxy_labels):
    """The JAX loss on a padded batch; gradients of the real rows and proxies, and of padding."""
    emb, emb_labels, places = padded(rng, embeddings, labels, rows)
    num_padding = proxy_rows - len(proxies)
    prox = np.concatenate([proxies, rng.normal(size=(num_padding, proxies.shape[1]))])
    prox_labels = np.pad(proxy_labels, (0, num_padding), constant_values=-1)
    value, (grad_emb, grad_prox) = loss_and_grads(
        jnp.asarray(emb, jnp.float32), emb_labels, jnp.asarray(prox, jnp.float32), prox_labels,
        **hparams)
    assert value.dtype == jnp.float32
    grad_emb, grad_prox = np.asarray(grad_emb, np.float64), np.asarray(grad_prox, np.float64)
    padding_grads = np.concatenate([np.delete(grad_emb, places, axis=0).ravel(),
                                    grad_prox[len(proxies):].ravel()])
    return (float(value), grad_emb[places], grad_prox[:len(proxies)]), padding_grads

  return padded_loss_and_grads


def make_padded_pair_loss(loss_fn: Callable, hparams: dict, rows: int = ROWS) -> Callable:
  """padded_loss_and_grad(rng, embeddings, labels, **overrides) for a loss without proxies.

  It runs loss_fn (jitted, hparams updated by overrides, static) on the batch padded to rows and
  returns (value, grad of the real rows, grad of the padding rows).
  """

  @functools.partial(jax.jit, static_argnames=tuple(hparams))
  def loss_and_grad(embeddings, labels, **static_hparams):
    no_proxies = jnp.zeros((0, embeddings.shape[1]), jnp.float32)
    return jax.value_and_grad(loss_fn)(
        embeddings, labels, no_proxies, jnp.zeros((0,), jnp.int32), **static_hparams)

  def padded_loss_and_grad(rng, embeddings, labels, **overrides):
    """The JAX loss on a padded batch; the gradient of the real rows, and of the padding rows."""
    emb, emb_labels, places = padded(rng, embeddings, labels, rows)
    value, grad = loss_and_grad(jnp.asarray(emb, jnp.float32), emb_labels,
                                **{**hparams, **overrides})
    assert value.dtype == jnp.float32
    grad = np.asarray(grad, np.float64)
    return float(value), grad[places], np.delete(grad, places, axis=0)

  return padded_loss_and_grad


def assert_matches(got: tuple, want: tuple, value_rtol: float = 1e-5, grad_tol: float = 1e-4):
  """got / want: (value, *gradients). Value to value_rtol; gradients to grad_tol of the largest
  reference element."""
  grads = np.concatenate([g.ravel() for g in got[1:]])
  want_grads = np.concatenate([g.ravel() for g in want[1:]])
  assert got[0] == pytest.approx(want[0], rel=value_rtol)
  assert np.max(np.abs(grads - want_grads)) <= grad_tol * np.max(np.abs(want_grads))


def assert_proxy_loss_matches_float64(padded_loss_and_grads: Callable, reference_loss: Callable,
                                      hparams: dict, sizes: tuple[int, int, int]):
  """The padded proxy loss against reference_loss(**hparams) and its central differences in
  float64 on proxy_batch(sizes = (num_samples, num_classes, proxies_per_class), seed num_samples);
  padding gets exactly zero gradient."""
  num_samples, num_classes, per_class = sizes
  rng = np.random.default_rng(num_samples)
  embeddings, labels, proxies, proxy_labels = proxy_batch(rng, num_samples, num_classes, 8,
                                                          per_class)
  got, padding_grads = padded_loss_and_grads(rng, embeddings, labels, proxies, proxy_labels)
  loss = functools.partial(reference_loss, **hparams)
  want = (loss(embeddings, labels, proxies, proxy_labels),
          numeric_gradient(lambda e: loss(e, labels, proxies, proxy_labels), embeddings),
          numeric_gradient(lambda p: loss(embeddings, labels, p, proxy_labels), proxies))
  assert_matches(got, want)
  assert np.all(padding_grads == 0)


def assert_all_padding_gives_zero(padded_loss_and_grads: Callable):
  """A batch of padding rows only: loss 0, zero gradients for the proxies and the padding."""
  rng = np.random.default_rng(8)
  _, _, proxies, proxy_labels = proxy_batch(rng, 4, 4, 8)
  got, padding_grads = padded_loss_and_grads(rng, np.zeros((0, 8)), np.zeros(0, np.int32),
                                             proxies, proxy_labels)
  assert got[0] == 0 and np.all(got[2] == 0) and np.all(padding_grads == 0)


def assert_rows_without_proxies_ignored(padded_loss_and_grads: Callable,
                                        reference_loss: Callable, hparams: dict):
  """A row whose class has no proxy: the loss is that of the batch without it, its gradient 0."""
  rng = np.random.default_rng(9)
  embeddings, labels, proxies, proxy_labels = proxy_batch(rng, 20, 6, 8)
  labels[3] = 6  # no proxy has class 6
  got, _ = padded_loss_and_grads(rng, embeddings, labels, proxies, proxy_labels)
  kept = np.arange(20) != 3
  assert got[0] == pytest.approx(reference_loss(embeddings[kept], labels[kept], proxies,
                                                proxy_labels, **hparams), rel=1e-5)
  assert np.all(got[1][3] == 0)


def assert_registry_proxy_loss_runs_on_bfloat16(name: str, reference_loss: Callable,
                                                hparams: dict, num_classes: int) -> jnp.ndarray:
  """make_loss(name): its defaults are hparams, one proxy per class, float32 proxies; on bfloat16
  embeddings a float32 value equal to reference_loss and finite bfloat16 gradients;
  proxies_per_class=0 refused. Returns the proxies it initialised (key 0, dimension 16)."""
  loss = make_loss(name)
  assert loss.hparams == hparams and loss.proxies_per_class == 1
  proxies = loss.init_proxies(jax.random.key(0), num_classes, 16)
  assert proxies.shape == (num_classes, 16) and proxies.dtype == jnp.float32
  embeddings = jax.random.normal(jax.random.key(1), (8, 16))
  labels = jnp.array([0, 0, 1, 1, 2, 3, num_classes - 1, -1])
  fn = jax.jit(jax.value_and_grad(lambda e, p: loss(e, labels, p, loss.proxy_labels(num_classes))))
  value, grad = fn(embeddings.astype(jnp.bfloat16), proxies)
  assert value.dtype == jnp.float32 and grad.dtype == jnp.bfloat16
  assert np.all(np.isfinite(np.asarray(grad, np.float32)))
  want = reference_loss(np.asarray(embeddings.astype(jnp.bfloat16), np.float64),
                        np.asarray(labels), np.asarray(proxies, np.float64),
                        np.arange(num_classes), **hparams)
  assert float(value) == pytest.approx(want, rel=1e-5)
  with pytest.raises(ValueError, match="proxies_per_class"):
    make_loss(name, proxies_per_class=0)
  return proxies
