"""Pieces the baseline losses share: pair masks with padding, and a masked log(1 + sum exp)."""

import jax
import jax.numpy as jnp


def batch_pair_masks(labels: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(positive, negative) (B, B) masks of the batch's pairs; a label < 0 (padding) pairs with
  nothing and a row is not its own positive."""
  valid = labels >= 0
  both_valid = valid[:, None] & valid[None, :]
  same = labels[:, None] == labels[None, :]
  positive = both_valid & same & ~jnp.eye(labels.shape[0], dtype=bool)
  return positive, both_valid & ~same


def proxy_pair_masks(labels: jnp.ndarray, proxy_labels: jnp.ndarray
                     ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(positive, negative) (B, Q) masks of embedding-proxy pairs; label < 0 rows and proxies
  are padding."""
  valid = (labels >= 0)[:, None] & (proxy_labels >= 0)[None, :]
  same = labels[:, None] == proxy_labels[None, :]
  return valid & same, valid & ~same


def log1p_sum_exp(x: jnp.ndarray, mask: jnp.ndarray, axis: int) -> jnp.ndarray:
  """log(1 + sum of exp(x) over the masked entries along ``axis``), stably; 0 where none is."""
  shape = list(x.shape)
  shape[axis] = 1
  one = jnp.zeros(shape, x.dtype)
  return jax.nn.logsumexp(jnp.concatenate([jnp.where(mask, x, -jnp.inf), one], axis=axis),
                          axis=axis)
