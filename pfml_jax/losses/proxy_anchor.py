"""Proxy Anchor loss (Kim et al., CVPR 2020).

With s(x, p) the cosine similarity of an embedding and a proxy, P the proxies, P+ the proxies
with at least one positive (same-class) embedding in the batch, X_p+ / X_p- the batch's
embeddings of / not of proxy p's class:

    L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (s(x, p) - delta)))
      + 1/|P|  sum_{p in P}  log(1 + sum_{x in X_p-} exp( alpha (s(x, p) + delta)))

Defaults alpha = 32, delta = 0.1 and one proxy per class, initialised kaiming-normal, as the
paper and its reference code. With M > 1 proxies per class each proxy is its own anchor.
"""

import jax
import jax.numpy as jnp

from pfml_jax.losses.pair_terms import log1p_sum_exp, proxy_pair_masks
from pfml_jax.numerics import l2_normalize


def proxy_anchor_loss(embeddings: jnp.ndarray, labels: jnp.ndarray, proxies: jnp.ndarray,
                      proxy_labels: jnp.ndarray, *, alpha: float = 32.0,
                      margin: float = 0.1) -> jnp.ndarray:
  """Proxy Anchor loss; a float32 scalar, differentiable in embeddings and proxies.

  Args:
    embeddings: (B, D) float32 or bfloat16; L2-normalised here.
    labels: (B,) int; a label < 0 marks a padding row that contributes nothing.
    proxies: (Q, D) proxies (L2-normalised here, in float32).
    proxy_labels: (Q,) int class of each proxy; < 0 marks a padding proxy.
    alpha: scale of the similarities (paper: 32).
    margin: delta, the margin on the similarities (paper: 0.1).
  Returns:
    The loss as a float32 scalar (0 for a batch of padding only).
  """
  cosine = jnp.matmul(l2_normalize(embeddings), l2_normalize(proxies).T,
                      precision=jax.lax.Precision.HIGHEST)
  positive, negative = proxy_pair_masks(labels, proxy_labels)
  pos_term = log1p_sum_exp(-alpha * (cosine - margin), positive, axis=0)
  neg_term = log1p_sum_exp(alpha * (cosine + margin), negative, axis=0)
  num_with_positives = jnp.sum(jnp.any(positive, axis=0))
  num_proxies = jnp.sum(proxy_labels >= 0)
  return (jnp.sum(pos_term) / jnp.maximum(num_with_positives, 1)
          + jnp.sum(neg_term) / jnp.maximum(num_proxies, 1))

