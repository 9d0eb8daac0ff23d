"""Normalized Softmax loss (Zhai & Wu, BMVC 2019): cross-entropy on cosine logits.

The proxies are the class weights, normalised like the embeddings; with temperature T:

    L = mean over embeddings x of -log( sum_{p of x's class} exp(cos(x, p) / T)
                                        / sum_{p in all proxies} exp(cos(x, p) / T) )

With one proxy per class (the paper's setting and the default) this is softmax cross-entropy
with logits cos(x, w_c) / T; with M > 1 a class's probability is the mass of its M proxies.
Default T = 0.05 (paper; also pytorch-metric-learning's ``NormalizedSoftmaxLoss``).
"""

import jax
import jax.numpy as jnp

from pfml_jax.numerics import l2_normalize
from pfml_jax.losses.proxy_nca import class_negative_log_likelihood


def normalized_softmax_loss(embeddings: jnp.ndarray, labels: jnp.ndarray, proxies: jnp.ndarray,
                            proxy_labels: jnp.ndarray, *,
                            temperature: float = 0.05) -> jnp.ndarray:
  """Normalized Softmax loss; a float32 scalar, differentiable in embeddings and proxies.

  Args:
    embeddings: (B, D) float32 or bfloat16; L2-normalised here.
    labels: (B,) int; a label < 0 marks a padding row that contributes nothing.
    proxies: (Q, D) class weights (L2-normalised here, in float32).
    proxy_labels: (Q,) int class of each proxy; < 0 marks a padding proxy.
    temperature: T, dividing the cosine logits (paper: 0.05).
  Returns:
    The loss as a float32 scalar (0 for a batch of padding only).
  """
  cosine = jnp.matmul(l2_normalize(embeddings), l2_normalize(proxies).T,
                      precision=jax.lax.Precision.HIGHEST)
  return class_negative_log_likelihood(cosine / temperature, labels, proxy_labels)
