"""Multi-Similarity loss with its pair mining (Wang et al., CVPR 2019).

With S_ik the cosine similarity of embeddings i and k, an anchor i's positives are the other
samples of its class and its negatives the samples of other classes. The paper's mining keeps
the informative pairs:

    negative k kept if S_ik + epsilon > min over positives j of S_ij
    positive k kept if S_ik - epsilon < max over negatives j of S_ij

and its loss over the kept positives P_i and negatives N_i is

    L = 1/m sum_i [ 1/alpha log(1 + sum_{k in P_i} exp(-alpha (S_ik - lambda)))
                  + 1/beta  log(1 + sum_{k in N_i} exp( beta  (S_ik - lambda))) ]

with m the number of (non-padding) samples in the batch. Defaults alpha = 2, beta = 50,
lambda = 0.5 (``base``), epsilon = 0.1 (paper). Mining is a selection, not differentiated.
An anchor without kept pairs (e.g. a class's only sample) adds 0; a batch without any kept pair
gives 0 with zero gradients.
"""

import jax
import jax.numpy as jnp

from pfml_jax.losses.pair_terms import batch_pair_masks, log1p_sum_exp
from pfml_jax.numerics import l2_normalize


def multi_similarity_loss(embeddings: jnp.ndarray, labels: jnp.ndarray,
                          proxies: jnp.ndarray | None = None,
                          proxy_labels: jnp.ndarray | None = None, *, alpha: float = 2.0,
                          beta: float = 50.0, base: float = 0.5,
                          epsilon: float = 0.1) -> jnp.ndarray:
  """Multi-Similarity loss with mining; a float32 scalar, differentiable in the embeddings.

  Args:
    embeddings: (B, D) float32 or bfloat16; L2-normalised here.
    labels: (B,) int; a label < 0 marks a padding row that contributes nothing.
    proxies: ignored (the loss uses no proxies; the registry passes a (0, D) array).
    proxy_labels: ignored.
    alpha: scale of the positive pairs (paper: 2).
    beta: scale of the negative pairs (paper: 50).
    base: lambda, the similarity threshold (paper: 0.5).
    epsilon: the mining margin (paper: 0.1).
  Returns:
    The loss as a float32 scalar.
  """
  del proxies, proxy_labels
  unit = l2_normalize(embeddings)
  similarity = jnp.matmul(unit, unit.T, precision=jax.lax.Precision.HIGHEST)
  positive, negative = batch_pair_masks(labels)
  fixed = jax.lax.stop_gradient(similarity)
  hardest_negative = jnp.max(jnp.where(negative, fixed, -jnp.inf), axis=1, keepdims=True)
  easiest_positive = jnp.min(jnp.where(positive, fixed, jnp.inf), axis=1, keepdims=True)
  kept_positive = positive & (fixed - epsilon < hardest_negative)
  kept_negative = negative & (fixed + epsilon > easiest_positive)
  pos_term = log1p_sum_exp(-alpha * (similarity - base), kept_positive, axis=1) / alpha
  neg_term = log1p_sum_exp(beta * (similarity - base), kept_negative, axis=1) / beta
  return jnp.sum(pos_term + neg_term) / jnp.maximum(jnp.sum(labels >= 0), 1)
