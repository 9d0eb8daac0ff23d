"""Shared cases of the field tests: clustered points near the radii, and the comparison of an
energy and its gradients with the float64 reference."""

import numpy as np
import pytest


def clustered_points(rng, num_samples, num_classes, proxies_per_class, dim, spread=0.15):
  """Samples and proxies scattered around class centres, so many pairs fall near delta."""
  centres = rng.normal(size=(num_classes, dim))
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)
  labels = rng.integers(0, num_classes, num_samples)
  embeddings = centres[labels] + spread * rng.normal(size=(num_samples, dim)) / np.sqrt(dim)
  proxy_labels = np.repeat(np.arange(num_classes), proxies_per_class)
  proxies = centres[proxy_labels] + spread * rng.normal(size=(len(proxy_labels), dim)) / np.sqrt(dim)
  return (embeddings.astype(np.float32), labels.astype(np.int32), proxies.astype(np.float32),
          proxy_labels.astype(np.int32))


def assert_matches_reference(got, want, energy_rtol=1e-5, grad_tol=1e-4):
  energy, grad_emb, grad_prox = got
  ref_energy, ref_emb, ref_prox = want
  assert energy == pytest.approx(ref_energy, rel=energy_rtol)
  ref_grads = np.concatenate([ref_emb.ravel(), ref_prox.ravel()])
  grads = np.concatenate([grad_emb.ravel(), grad_prox.ravel()])
  scale = np.max(np.abs(ref_grads))
  assert np.max(np.abs(grads - ref_grads)) <= grad_tol * scale
