"""ProxyNCA loss (Movshovitz-Attias et al., ICCV 2017) in the form DML code uses.

With x and p L2-normalised, d^2(x, p) = ||x - p||^2 and s the softmax scale:

    L = mean over embeddings x of
        -log( sum_{p of x's class} exp(-s d^2(x, p)) / sum_{p in all proxies} exp(-s d^2(x, p)) )

This is pytorch-metric-learning's ``ProxyNCALoss`` (an NCA softmax over proxies). The paper's
own formula leaves the positive proxy out of the denominator; like the code the field's results
come from, we keep it in. Default s = 32, the value of Proxy Anchor's reference code for its
ProxyNCA baseline (pytorch-metric-learning's own default is 1). Because d^2 = 2 - 2 cos on the
sphere, this equals a normalised softmax with temperature 1 / (2 s).
"""

import jax
import jax.numpy as jnp

from pfml_jax.numerics import l2_normalize


def proxy_nca_loss(embeddings: jnp.ndarray, labels: jnp.ndarray, proxies: jnp.ndarray,
                   proxy_labels: jnp.ndarray, *, softmax_scale: float = 32.0) -> jnp.ndarray:
  """ProxyNCA loss; a float32 scalar, differentiable in embeddings and proxies.

  Args:
    embeddings: (B, D) float32 or bfloat16; L2-normalised here.
    labels: (B,) int; a label < 0 marks a padding row that contributes nothing.
    proxies: (Q, D) proxies (L2-normalised here, in float32).
    proxy_labels: (Q,) int class of each proxy; < 0 marks a padding proxy.
    softmax_scale: s, the inverse temperature on squared distances (default 32).
  Returns:
    The loss as a float32 scalar (0 for a batch of padding only).
  """
  cosine = jnp.matmul(l2_normalize(embeddings), l2_normalize(proxies).T,
                      precision=jax.lax.Precision.HIGHEST)
  squared_distance = 2.0 - 2.0 * cosine
  return class_negative_log_likelihood(-softmax_scale * squared_distance, labels, proxy_labels)


def class_negative_log_likelihood(logits: jnp.ndarray, labels: jnp.ndarray,
                                  proxy_labels: jnp.ndarray) -> jnp.ndarray:
  """Mean over rows of -log(softmax mass of the row's class's proxies).

  Args:
    logits: (B, Q) float32 logits of every embedding against every proxy.
    labels: (B,) int; rows with label < 0, or whose class has no proxy, count for nothing
      (as pytorch-metric-learning drops rows of zero probability).
    proxy_labels: (Q,) int; proxies with label < 0 are left out of the softmax.
  Returns:
    The float32 mean negative log-likelihood (0 when no row counts).
  """
  valid_proxies = (proxy_labels >= 0)[None, :]
  own_class = valid_proxies & (labels[:, None] == proxy_labels[None, :])
  counted = (labels >= 0) & jnp.any(own_class, axis=1)
  uncounted = ~counted[:, None]  # such rows keep all logits, so every sum below stays finite
  log_all = jax.nn.logsumexp(jnp.where(valid_proxies | uncounted, logits, -jnp.inf), axis=1)
  log_own = jax.nn.logsumexp(jnp.where(own_class | uncounted, logits, -jnp.inf), axis=1)
  return jnp.sum(jnp.where(counted, log_all - log_own, 0.0)) / jnp.maximum(jnp.sum(counted), 1)
