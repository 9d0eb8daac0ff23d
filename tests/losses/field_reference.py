"""Independent float64 NumPy implementation of PFML's energy and its gradient (test oracle)."""

import numpy as np

MIN_DISTANCE = 1e-4


def _normalize(x):
  norm = np.linalg.norm(x, axis=1, keepdims=True)
  return x / norm, norm


def _normalize_backward(unit, norm, grad_unit):
  """dU/de for unit = e / ||e||: (I - unit unit^T) grad / ||e||, row by row."""
  radial = np.sum(unit * grad_unit, axis=1, keepdims=True)
  return (grad_unit - radial * unit) / norm


def energy_and_grad(embeddings, labels, proxies, proxy_labels, alpha, delta_att, delta_rep,
                    normalize_proxies=True, proxy_self_attraction=True):
  """Returns (U, dU/d embeddings, dU/d proxies) in float64.

  U = sum over ordered pairs a != b of valid points (label >= 0) of
  -max(d, delta_att)^-alpha (same label) or min(d, delta_rep)^-alpha (different labels);
  without ``proxy_self_attraction`` a pair of two proxies with the same label is skipped.
  """
  emb = np.asarray(embeddings, np.float64)
  prox = np.asarray(proxies, np.float64).reshape(-1, emb.shape[1])
  emb_unit, emb_norm = _normalize(emb)
  if normalize_proxies and len(prox):
    prox_unit, prox_norm = _normalize(prox)
  else:
    prox_unit, prox_norm = prox, None
  x = np.concatenate([emb_unit, prox_unit])
  lab = np.concatenate([np.asarray(labels), np.asarray(proxy_labels).reshape(-1)])
  n = len(x)
  is_proxy = np.arange(n) >= len(emb)
  energy = 0.0
  grad_x = np.zeros_like(x)
  for a in range(n):
    if lab[a] < 0:
      continue
    others = np.array([b for b in range(n) if b != a and lab[b] >= 0 and (
        proxy_self_attraction or not (is_proxy[a] and is_proxy[b] and lab[a] == lab[b]))],
                      dtype=int)
    if not len(others):
      continue
    diff = x[a] - x[others]
    raw = np.sqrt(np.sum(diff**2, axis=1))
    d = np.maximum(raw, MIN_DISTANCE)
    same = lab[others] == lab[a]
    psi = np.where(same, -np.maximum(d, delta_att)**-alpha, np.minimum(d, delta_rep)**-alpha)
    energy += psi.sum()
    # d psi / d d: attraction pulls beyond delta_att, repulsion pushes inside delta_rep.
    slope = np.where(same, np.where(d > delta_att, alpha * d**(-alpha - 1), 0.0),
                     np.where(d < delta_rep, -alpha * d**(-alpha - 1), 0.0))
    slope = np.where(raw > MIN_DISTANCE, slope, 0.0)
    # Pair (a, b) and pair (b, a) both move x_a.
    grad_x[a] += 2 * np.sum((slope / d)[:, None] * diff, axis=0)
  grad_emb = _normalize_backward(emb_unit, emb_norm, grad_x[:len(emb)])
  grad_prox = grad_x[len(emb):]
  if prox_norm is not None:
    grad_prox = _normalize_backward(prox_unit, prox_norm, grad_prox)
  return energy, grad_emb, grad_prox
