"""HIST loss: Hypergraph-Induced Semantic Tuplet loss (Lim et al., CVPR 2022).

Each class c has a learnable prototypical distribution: a mean mu_c (the proxy, L2-normalised
here) and a diagonal log-variance v_c, clamped by relu6 to [0, 6]. With x_i the L2-normalised
embeddings, the squared Mahalanobis distance is

    d_ic = sum_k (x_ik - mu_ck)^2 / exp(relu6(v_ck)).

Semantic tuplet (distribution) loss: L_dist = mean_i -log softmax_c(-tau d_ic)[y_i].
Hypergraph: one hyperedge per class present in the batch, incidences
H_ic = 1 if y_i = c, else exp(-alpha d_ic); G = Dv^-1/2 H De^-1 H^T Dv^-1/2 with node degrees
Dv = H 1 and edge degrees De = H^T 1 (unit edge weights). The hypergraph neural network (HGNN,
Feng et al., AAAI 2019) classifies the batch's nodes from the raw embeddings e_i (the model's
output, not normalised here):

    out = G (LeakyReLU_0.1(BN(G (e W1 + b1))) W2 + b2),   L_ce = mean_i CE(out_i, y_i),

with BN a batch normalisation over the batch's rows (batch statistics, eps 1e-5, learned scale
and shift). HIST = L_dist + lambda_s L_ce. Gradients flow through H (and G) into the
embeddings, means and log-variances, as in the reference code.

[HIST] = the reference code, github ljin0429/HIST (code/hist.py: CDs2Hg, HGNN; code/train.py).
Padding rows (label < 0) are no nodes; padding proxies (label < 0) are no classes.
With M > 1 proxies per class, each proxy is a distribution and a hyperedge, and a sample's
probability is the softmax mass of its class's proxies ([HIST] has M = 1).
"""

import math

import jax
import jax.numpy as jnp

from pfml_jax.numerics import l2_normalize

_HIGHEST = jax.lax.Precision.HIGHEST
BATCH_NORM_EPS = 1e-5  # torch.nn.BatchNorm1d's default [HIST: HGNN.bn1]
LEAKY_SLOPE = 0.1  # nn.LeakyReLU(0.1) [HIST: HGNN]


def init_hist_params(rng: jax.Array, num_classes: int, proxies_per_class: int, dim: int, *,
                     hgnn_hidden: int) -> dict:
  """HIST's learnable parameters besides the proxies (the distributions' means).

  Returns {"proxies": {"log_variances": (Q, dim)}, "hgnn": {...}} with Q = num_classes * M;
  the "proxies" subtree trains at the proxies' rate ([HIST]: the CDs2Hg group, --lr-ds).
  Inits as [HIST]: log-variances kaiming_normal_(mode='fan_out') on the (Q, dim) tensor, i.e.
  N(0, 2 / Q) like the means; the HGNN's Linear layers torch's default, U(+-1 / sqrt(fan_in))
  for kernel and bias; BatchNorm1d scale 1, shift 0.
  """
  rows = num_classes * proxies_per_class
  keys = jax.random.split(rng, 5)

  def torch_linear(kernel_key, bias_key, fan_in, fan_out):
    bound = 1.0 / math.sqrt(fan_in)
    return {"kernel": jax.random.uniform(kernel_key, (fan_in, fan_out), jnp.float32,
                                         -bound, bound),
            "bias": jax.random.uniform(bias_key, (fan_out,), jnp.float32, -bound, bound)}

  return {
      "proxies": {"log_variances": jax.random.normal(keys[0], (rows, dim), jnp.float32)
                                   * jnp.sqrt(2.0 / rows)},
      "hgnn": {"theta1": torch_linear(keys[1], keys[2], dim, hgnn_hidden),
               "bn": {"scale": jnp.ones((hgnn_hidden,), jnp.float32),
                      "bias": jnp.zeros((hgnn_hidden,), jnp.float32)},
               "theta2": torch_linear(keys[3], keys[4], hgnn_hidden, num_classes)},
  }


def mahalanobis_distances(embeddings: jnp.ndarray, proxies: jnp.ndarray,
                          log_variances: jnp.ndarray) -> jnp.ndarray:
  """(B, Q) squared Mahalanobis distances of the normalised embeddings to the normalised means.

  Expanded as sum(x^2 / s) - 2 x.(mu / s) + sum(mu^2 / s), so no (B, Q, D) array is built
  (SOP has 11,318 classes); every term is O(1) on the unit sphere, float32 keeps ~1e-6.
  """
  x = l2_normalize(embeddings)
  mu = l2_normalize(proxies)
  inv_var = jnp.exp(-jax.nn.relu6(log_variances))
  return (jnp.matmul(x * x, inv_var.T, precision=_HIGHEST)
          - 2.0 * jnp.matmul(x, (mu * inv_var).T, precision=_HIGHEST)
          + jnp.sum(mu * mu * inv_var, axis=1)[None, :])


def _masked_batch_norm(h, valid, scale, bias):
  """BatchNorm1d in training mode over the valid rows (biased variance, as torch)."""
  weights = valid[:, None].astype(h.dtype)
  count = jnp.maximum(jnp.sum(weights), 1.0)
  mean = jnp.sum(weights * h, axis=0) / count
  variance = jnp.sum(weights * (h - mean) ** 2, axis=0) / count
  return (h - mean) * jax.lax.rsqrt(variance + BATCH_NORM_EPS) * scale + bias


def hgnn_logits(embeddings: jnp.ndarray, propagation: jnp.ndarray, valid: jnp.ndarray,
                hgnn: dict) -> jnp.ndarray:
  """(B, num_classes) node logits of the two-layer HGNN [HIST: HGNN.forward]."""
  dense = lambda x, layer: jnp.matmul(x, layer["kernel"], precision=_HIGHEST) + layer["bias"]
  h = jnp.matmul(propagation, dense(embeddings, hgnn["theta1"]), precision=_HIGHEST)
  h = _masked_batch_norm(h, valid, hgnn["bn"]["scale"], hgnn["bn"]["bias"])
  h = jax.nn.leaky_relu(h, LEAKY_SLOPE)
  return jnp.matmul(propagation, dense(h, hgnn["theta2"]), precision=_HIGHEST)


def hist_loss(embeddings: jnp.ndarray, labels: jnp.ndarray, proxies: jnp.ndarray,
              proxy_labels: jnp.ndarray, *, params: dict, tau: float = 32.0, alpha: float = 0.9,
              lambda_s: float = 1.0) -> jnp.ndarray:
  """HIST loss; a float32 scalar, differentiable in embeddings, proxies and ``params``.

  Args:
    embeddings: (B, D) the model's output (normalised here for the distances; the HGNN reads
      them as they are, as [HIST] reads its LayerNorm output).
    labels: (B,) int in [0, num_classes); a label < 0 marks a padding row.
    proxies: (Q, D) the distributions' means; proxy_labels (Q,) their classes (< 0: padding).
    params: ``init_hist_params``'s tree: the log-variances (Q, D) and the HGNN's weights.
    tau: softmax temperature scale of the distribution loss ([HIST: --tau]).
    alpha: hardness scale of the incidences exp(-alpha d) ([HIST: --alpha]).
    lambda_s: weight of the HGNN's cross-entropy ([HIST: --ls]).
  Returns:
    L_dist + lambda_s L_ce, each a mean over the valid rows (0 for a batch of padding only).
  """
  embeddings = embeddings.astype(jnp.float32)
  valid = labels >= 0
  valid_proxies = proxy_labels >= 0
  same = valid[:, None] & valid_proxies[None, :] & (labels[:, None] == proxy_labels[None, :])
  distance = mahalanobis_distances(embeddings, proxies, params["proxies"]["log_variances"])
  num_valid = jnp.maximum(jnp.sum(valid), 1)

  logits = jnp.where(valid_proxies[None, :], -tau * distance, -jnp.inf)
  # A padding row takes every proxy as its own (log-probability 0) so that nothing in it is
  # -inf; it is then masked out.
  target = same | (~valid[:, None] & valid_proxies[None, :])
  own = jax.nn.logsumexp(jnp.where(target, logits, -jnp.inf), axis=1)
  log_probability = own - jax.nn.logsumexp(logits, axis=1)
  distribution_loss = jnp.sum(jnp.where(valid, -log_probability, 0.0)) / num_valid

  present = jnp.any(same, axis=0)
  incidence = jnp.where(same, 1.0, jnp.exp(-alpha * distance))
  incidence = jnp.where(valid[:, None] & present[None, :], incidence, 0.0)
  node_degree = jnp.sum(incidence, axis=1)  # >= 1 for valid rows (their own class)
  edge_degree = jnp.sum(incidence, axis=0)  # >= 1 for present classes
  inv_sqrt_node = jnp.where(valid, jax.lax.rsqrt(jnp.where(valid, node_degree, 1.0)), 0.0)
  inv_edge = jnp.where(present, 1.0 / jnp.where(present, edge_degree, 1.0), 0.0)
  weighted = incidence * inv_sqrt_node[:, None]
  propagation = jnp.matmul(weighted * inv_edge[None, :], weighted.T, precision=_HIGHEST)

  out = hgnn_logits(embeddings, propagation, valid, params["hgnn"])
  safe_labels = jnp.where(valid, labels, 0)
  cross_entropy = (jax.nn.logsumexp(out, axis=1)
                   - jnp.take_along_axis(out, safe_labels[:, None], axis=1)[:, 0])
  ce_loss = jnp.sum(jnp.where(valid, cross_entropy, 0.0)) / num_valid
  return distribution_loss + lambda_s * ce_loss
