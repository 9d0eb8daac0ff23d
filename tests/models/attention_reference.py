"""Softmax attention in float64 NumPy: the reference every attention implementation meets."""

import numpy as np


def reference_attention(q, k, v):
  q, k, v = (x.astype(np.float64) for x in (q, k, v))
  logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
  weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
  weights /= weights.sum(axis=-1, keepdims=True)
  return np.einsum("bhqk,bkhd->bqhd", weights, v)
