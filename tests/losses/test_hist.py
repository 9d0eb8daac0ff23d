"""HIST against a float64 NumPy transcription of its reference code's formulas.

The reference follows ljin0429/HIST code/hist.py step by step on the unpadded batch: explicit
(N, Q, D) differences, a softmax then the sum of the own class's probabilities, hyperedges for
the classes present only, the propagation matrix as a product of diagonal matrices, and the
HGNN with batch statistics. The JAX loss runs on a padded batch (padding rows and proxies with
label -1 and random values), which must change neither the value nor the real gradients.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.losses import make_loss
from pfml_jax.losses.hist import hist_loss, init_hist_params
from tests.losses.baseline_support import assert_matches, numeric_gradient, padded, proxy_batch

HPARAMS = dict(tau=32.0, alpha=0.9, lambda_s=1.0)
DIM, HIDDEN, ROWS, PROXY_PADDING = 6, 5, 24, 3


def reference_loss(embeddings, labels, proxies, proxy_labels, log_variances, hgnn, tau, alpha,
                   lambda_s):
  """HIST in float64 on the valid rows and proxies (label >= 0)."""
  keep, keep_proxies = labels >= 0, proxy_labels >= 0
  e, y = embeddings[keep], labels[keep]
  x = e / np.linalg.norm(e, axis=1, keepdims=True)
  mu = proxies[keep_proxies] / np.linalg.norm(proxies[keep_proxies], axis=1, keepdims=True)
  variances = np.exp(np.clip(log_variances[keep_proxies], 0.0, 6.0))  # relu6
  one_hot = (y[:, None] == proxy_labels[keep_proxies][None, :]).astype(np.float64)
  distance = np.sum((x[:, None, :] - mu[None, :, :]) ** 2 / variances[None], axis=-1)
  logits = -tau * distance
  softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
  softmax /= softmax.sum(axis=1, keepdims=True)
  distribution_loss = np.mean(-np.log(np.sum(softmax * one_hot, axis=1)))

  in_batch = one_hot.sum(axis=0) != 0
  h = one_hot[:, in_batch] + np.exp(-alpha * distance[:, in_batch]) * (1 - one_hot[:, in_batch])
  inv_dv_half = np.diag(h.sum(axis=1) ** -0.5)
  inv_de = np.diag(1.0 / h.sum(axis=0))
  g = inv_dv_half @ h @ np.eye(h.shape[1]) @ inv_de @ h.T @ inv_dv_half

  hidden = g @ (e @ hgnn["theta1"]["kernel"] + hgnn["theta1"]["bias"])
  hidden = ((hidden - hidden.mean(axis=0)) / np.sqrt(hidden.var(axis=0) + 1e-5)
            * hgnn["bn"]["scale"] + hgnn["bn"]["bias"])
  hidden = np.where(hidden > 0, hidden, 0.1 * hidden)
  out = g @ (hidden @ hgnn["theta2"]["kernel"] + hgnn["theta2"]["bias"])
  log_softmax = out - out.max(axis=1, keepdims=True)
  log_softmax -= np.log(np.exp(log_softmax).sum(axis=1, keepdims=True))
  ce_loss = -np.mean(log_softmax[np.arange(len(y)), y])
  return distribution_loss + lambda_s * ce_loss


def random_params(rng, num_classes, per_class):
  """init_hist_params's tree with random float64 values; log-variances span relu6's clamp
  (below 0 and above 6) but stay away from its kinks, where differences are one-sided."""
  shapes = jax.eval_shape(functools.partial(init_hist_params, num_classes=num_classes,
                                            proxies_per_class=per_class, dim=DIM,
                                            hgnn_hidden=HIDDEN), jax.random.key(0))
  params = jax.tree.map(lambda s: rng.normal(size=s.shape) * 0.7, shapes)
  log_variances = rng.uniform(-1.0, 7.0, size=(num_classes * per_class, DIM))
  near_kink = (np.abs(log_variances) < 0.05) | (np.abs(log_variances - 6) < 0.05)
  params["proxies"]["log_variances"] = np.where(near_kink, 0.5, log_variances)
  params["hgnn"]["bn"]["scale"] += 1.0
  return params


@functools.partial(jax.jit, static_argnames=tuple(HPARAMS))
def loss_and_grads(embeddings, labels, proxies, proxy_labels, params, **hparams):
  def loss(embeddings, proxies, params):
    return hist_loss(embeddings, labels, proxies, proxy_labels, params=params, **hparams)
  return jax.value_and_grad(loss, argnums=(0, 1, 2))(embeddings, proxies, params)


def padded_loss_and_grads(rng, embeddings, labels, proxies, proxy_labels, params, hparams):
  """The JAX loss on a padded batch: (value, real gradients), and every padding gradient."""
  emb, emb_labels, places = padded(rng, embeddings, labels, ROWS)
  prox = np.concatenate([proxies, rng.normal(size=(PROXY_PADDING, DIM))])
  prox_labels = np.pad(proxy_labels, (0, PROXY_PADDING), constant_values=-1)
  padded_params = jax.tree.map(np.copy, params)
  padded_params["proxies"]["log_variances"] = np.concatenate(
      [params["proxies"]["log_variances"], rng.normal(size=(PROXY_PADDING, DIM))])
  as32 = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)
  value, (g_emb, g_prox, g_params) = loss_and_grads(as32(emb), emb_labels, as32(prox),
                                                    prox_labels, as32(padded_params), **hparams)
  assert value.dtype == jnp.float32
  g_emb, g_prox = np.asarray(g_emb, np.float64), np.asarray(g_prox, np.float64)
  g_params = jax.tree.map(lambda x: np.asarray(x, np.float64), g_params)
  g_log_var = g_params["proxies"]["log_variances"]
  num = len(proxies)
  padding = np.concatenate([np.delete(g_emb, places, axis=0).ravel(), g_prox[num:].ravel(),
                            g_log_var[num:].ravel()])
  real = (float(value), g_emb[places], g_prox[:num], g_log_var[:num],
          *jax.tree.leaves(g_params["hgnn"]))
  return real, padding


def reference_and_numeric_grads(embeddings, labels, proxies, proxy_labels, params, hparams):
  """(value, d/d embeddings, d/d proxies, d/d log-variances, d/d every HGNN leaf), float64."""
  def loss(e=embeddings, p=proxies, log_var=params["proxies"]["log_variances"],
           hgnn=params["hgnn"]):
    return reference_loss(e, labels, p, proxy_labels, log_var, hgnn, **hparams)

  leaves, treedef = jax.tree.flatten(params["hgnn"])
  hgnn_grads = []
  for i, leaf in enumerate(leaves):
    def with_leaf(value, i=i):
      return loss(hgnn=jax.tree.unflatten(treedef, leaves[:i] + [value] + leaves[i + 1:]))
    hgnn_grads.append(numeric_gradient(with_leaf, leaf))
  return (loss(), numeric_gradient(lambda e: loss(e=e), embeddings),
          numeric_gradient(lambda p: loss(p=p), proxies),
          numeric_gradient(lambda v: loss(log_var=v), params["proxies"]["log_variances"]),
          *hgnn_grads)


@pytest.mark.parametrize("sizes,hparams", [
    ((10, 4, 1), HPARAMS),
    ((16, 6, 1), dict(tau=16.0, alpha=2.0, lambda_s=1.0)),  # HIST's SOP command
    ((12, 4, 2), dict(tau=32.0, alpha=1.1, lambda_s=0.5)),
])
def test_value_and_gradients_match_float64_reference(sizes, hparams):
  num_samples, num_classes, per_class = sizes
  rng = np.random.default_rng(num_samples)
  embeddings, labels, proxies, proxy_labels = proxy_batch(rng, num_samples, num_classes, DIM,
                                                          per_class)
  params = random_params(rng, num_classes, per_class)
  got, padding_grads = padded_loss_and_grads(rng, embeddings, labels, proxies, proxy_labels,
                                             params, hparams)
  want = reference_and_numeric_grads(embeddings, labels, proxies, proxy_labels, params, hparams)
  assert_matches(got, want)
  assert np.all(padding_grads == 0)
  # Every group of parameters is moved by the loss (HGNN included, through G and the CE).
  assert all(np.any(g != 0) for g in got[1:])


def test_classes_absent_from_the_batch_are_no_hyperedges_and_get_no_log_variance_gradient():
  rng = np.random.default_rng(3)
  embeddings, labels, proxies, proxy_labels = proxy_batch(rng, 10, 6, DIM)
  labels = np.where(labels == 4, 0, labels)  # class 4 absent; class 5 has one sample
  params = random_params(rng, 6, 1)
  got, _ = padded_loss_and_grads(rng, embeddings, labels, proxies, proxy_labels, params,
                                 HPARAMS)
  want = reference_and_numeric_grads(embeddings, labels, proxies, proxy_labels, params, HPARAMS)
  assert_matches(got, want)
  # An absent class still enters the softmax's denominator, so its mean and variance move
  # only through the distribution loss, as in the reference.
  assert np.any(got[2][4] != 0)


def test_all_padding_gives_zero_and_zero_gradients():
  rng = np.random.default_rng(4)
  _, _, proxies, proxy_labels = proxy_batch(rng, 4, 4, DIM)
  params = random_params(rng, 4, 1)
  got, padding_grads = padded_loss_and_grads(rng, np.zeros((0, DIM)), np.zeros(0, np.int32),
                                             proxies, proxy_labels, params, HPARAMS)
  assert got[0] == 0
  assert all(np.all(g == 0) for g in got[1:]) and np.all(padding_grads == 0)


def test_registry_defaults_init_and_bfloat16_embeddings():
  loss = make_loss("hist")
  assert loss.hparams == dict(HPARAMS, hgnn_hidden=512) and loss.proxies_per_class == 1
  num_classes, dim = 100, 512
  proxies = loss.init_proxies(jax.random.key(0), num_classes, dim)
  # Proxies padded to a multiple of 8 (sharded over 8 devices): 100 -> 104 rows.
  params = dataclasses.replace(loss, pad_to=8).init_params(jax.random.key(1), num_classes, dim)
  log_variances = params["proxies"]["log_variances"]
  # [HIST]: means and log-variances kaiming_normal_(fan_out = classes); torch Linear defaults.
  assert float(jnp.mean(proxies**2)) == pytest.approx(2 / num_classes, rel=0.05)
  assert log_variances.shape == (num_classes + 4, dim)
  assert float(jnp.mean(log_variances[:num_classes] ** 2)) == pytest.approx(2 / num_classes,
                                                                            rel=0.05)
  assert np.all(np.asarray(log_variances[num_classes:]) == 0)
  hgnn = params["hgnn"]
  assert hgnn["theta1"]["kernel"].shape == (dim, 512)
  assert hgnn["theta2"]["kernel"].shape == (512, num_classes)
  assert float(jnp.max(jnp.abs(hgnn["theta1"]["kernel"]))) <= 1 / np.sqrt(dim)
  assert float(jnp.max(jnp.abs(hgnn["theta2"]["bias"]))) <= 1 / np.sqrt(512)
  assert np.all(np.asarray(hgnn["bn"]["scale"]) == 1)

  rng = np.random.default_rng(5)
  embeddings, labels, _, _ = proxy_batch(rng, 32, num_classes, dim)
  proxy_labels = jnp.pad(loss.proxy_labels(num_classes), (0, 4), constant_values=-1)
  proxies = jnp.pad(proxies, ((0, 4), (0, 0)))
  value32 = loss(jnp.asarray(embeddings, jnp.float32), labels, proxies, proxy_labels,
                 params=params)
  value16, grad = jax.value_and_grad(loss)(jnp.asarray(embeddings, jnp.bfloat16), labels,
                                           proxies, proxy_labels, params=params)
  assert value16.dtype == jnp.float32 and grad.dtype == jnp.bfloat16
  assert float(value16) == pytest.approx(float(value32), rel=2e-2)
  assert np.all(np.isfinite(np.asarray(grad, np.float32)))
  with pytest.raises(ValueError, match="needs its parameters"):
    loss(embeddings, labels, proxies, proxy_labels)


def test_bad_hyperparameters_are_refused():
  with pytest.raises(Exception, match="tau must be a finite number > 0"):
    make_loss("hist", tau=0.0)
  with pytest.raises(Exception, match="no hyperparameter"):
    make_loss("hist", ls=1.0)
