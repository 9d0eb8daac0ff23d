"""Triplet margin loss with in-batch mining: semi-hard (default) or batch-hard.

d is the Euclidean distance between L2-normalised embeddings; a triplet (a, p, n) has p != a of
a's class and n of another class; its loss is [d(a, p) - d(a, n) + margin]_+.

``mining="semi_hard"`` (Schroff et al., CVPR 2015, as the DML baselines run it): every triplet
whose negative lies beyond the positive but inside the margin, 0 < d(a, n) - d(a, p) <= margin,
averaged over the triplets with a non-zero loss. This is pytorch-metric-learning's
``TripletMarginMiner(type_of_triplets="semihard")`` + ``TripletMarginLoss``, the Triplet baseline
of Proxy Anchor's reference code, whose margin 0.1 is the default here. (FaceNet's own
implementation instead keeps one negative per positive pair, the closest semi-hard one.)

``mining="batch_hard"`` (Hermans et al., 2017): per anchor, the farthest positive and the
closest negative, [max_p d(a, p) - min_n d(a, n) + margin]_+, averaged over the anchors that
have both.

Holds B^3 booleans for semi-hard mining (B = 100: 1 M). A batch without a triplet gives 0 with
zero gradients; padding rows (label < 0) take part in no triplet.
"""

from typing import Callable

import jax
import jax.numpy as jnp

from pfml_jax.losses.pair_terms import batch_pair_masks
from pfml_jax.numerics import l2_normalize
from pfml_jax.losses.potentials import clamped_distance


def triplet_loss(embeddings: jnp.ndarray, labels: jnp.ndarray,
                 proxies: jnp.ndarray | None = None, proxy_labels: jnp.ndarray | None = None,
                 *, margin: float = 0.1, mining: str = "semi_hard") -> jnp.ndarray:
  """Triplet margin loss with in-batch mining; a float32 scalar.

  Args:
    embeddings: (B, D) float32 or bfloat16; L2-normalised here.
    labels: (B,) int; a label < 0 marks a padding row that contributes nothing.
    proxies: ignored (the loss uses no proxies; the registry passes a (0, D) array).
    proxy_labels: ignored.
    margin: the margin on Euclidean distances of unit vectors (default 0.1, see module doc).
    mining: "semi_hard" or "batch_hard".
  Returns:
    The loss as a float32 scalar.
  """
  del proxies, proxy_labels
  if mining not in MINING:
    raise ValueError(f"triplet_loss: mining must be one of {sorted(MINING)}, got {mining!r}.")
  unit = l2_normalize(embeddings)
  cosine = jnp.matmul(unit, unit.T, precision=jax.lax.Precision.HIGHEST)
  distance = clamped_distance(2.0 - 2.0 * cosine)
  positive, negative = batch_pair_masks(labels)
  return MINING[mining](distance, positive, negative, margin)


def _semi_hard(distance: jnp.ndarray, positive: jnp.ndarray, negative: jnp.ndarray,
               margin: float) -> jnp.ndarray:
  """Mean non-zero loss of the triplets with 0 < d(a, n) - d(a, p) <= margin."""
  anchor_positive = distance[:, :, None]
  anchor_negative = distance[:, None, :]
  gap = jax.lax.stop_gradient(anchor_negative - anchor_positive)
  mined = positive[:, :, None] & negative[:, None, :] & (gap > 0) & (gap <= margin)
  losses = jnp.where(mined, jax.nn.relu(anchor_positive - anchor_negative + margin), 0.0)
  return jnp.sum(losses) / jnp.maximum(jnp.sum(losses > 0), 1)


def _batch_hard(distance: jnp.ndarray, positive: jnp.ndarray, negative: jnp.ndarray,
                margin: float) -> jnp.ndarray:
  """Mean over anchors with a triplet of [farthest positive - closest negative + margin]_+."""
  farthest_positive = jnp.max(jnp.where(positive, distance, -jnp.inf), axis=1)
  closest_negative = jnp.min(jnp.where(negative, distance, jnp.inf), axis=1)
  has_triplet = jnp.any(positive, axis=1) & jnp.any(negative, axis=1)
  losses = jnp.where(has_triplet, jax.nn.relu(farthest_positive - closest_negative + margin), 0.0)
  return jnp.sum(losses) / jnp.maximum(jnp.sum(has_triplet), 1)


MINING: dict[str, Callable[..., jnp.ndarray]] = {
    "semi_hard": _semi_hard,
    "batch_hard": _batch_hard,
}
