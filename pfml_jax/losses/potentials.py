"""PFML's pair potentials and their radial derivatives (paper Sec. 3, Eqs. 1-2).

A source point s creates, at distance d = ||r - s||:

    attraction (same class):      psi_att(d) = -max(d, delta_att) ** -alpha
    repulsion  (different class): psi_rep(d) = +min(d, delta_rep) ** -alpha

Attraction is flat inside ``delta_att`` (no force, no collapse onto a point) and its pull
``alpha * d ** (-alpha - 1)`` decays with distance; repulsion is a margin: constant (no force)
beyond ``delta_rep``. Every path of the energy (dense, block-sparse, GPU kernel) evaluates pairs
with these functions, so they share one meaning.
"""

from typing import NamedTuple

import jax.numpy as jnp

from pfml_jax import checks

# Distances are clamped from below (d >= MIN_DISTANCE, through d^2 before the square root) so
# that coincident points give finite energies and gradients.
MIN_DISTANCE = 1e-4
MIN_SQUARED_DISTANCE = MIN_DISTANCE**2


class FieldParams(NamedTuple):
  """Hyperparameters of the field (hashable, so they can be static under jit)."""

  alpha: float = 3.0
  delta_att: float = 0.2
  delta_rep: float = 0.2

  def validate(self) -> "FieldParams":
    """Raises a ValueError naming the bad value; returns self."""
    return FieldParams(*(checks.positive_number(value, f"potential field: {name}")
                         for name, value in self._asdict().items()))

  @property
  def far_repulsion(self) -> float:
    """psi_rep beyond delta_rep: what every different-label pair farther than it adds."""
    return float(self.delta_rep) ** -float(self.alpha)


def clamped_distance(squared_distance: jnp.ndarray) -> jnp.ndarray:
  """sqrt(max(d^2, MIN_DISTANCE^2)); the clamp comes first so the gradient stays finite."""
  return jnp.sqrt(jnp.maximum(squared_distance, MIN_SQUARED_DISTANCE))


def pair_potential(d: jnp.ndarray, same_label: jnp.ndarray, field: FieldParams) -> jnp.ndarray:
  """psi_att(d) for same-label pairs, psi_rep(d) for the others (elementwise)."""
  attraction = -jnp.maximum(d, field.delta_att) ** -field.alpha
  repulsion = jnp.minimum(d, field.delta_rep) ** -field.alpha
  return jnp.where(same_label, attraction, repulsion)


def unpulled_pairs(row: jnp.ndarray, col: jnp.ndarray, same_label: jnp.ndarray,
                   unpulled_from: int) -> jnp.ndarray:
  """Same-label pairs (row, col) that add nothing: both rows at or after ``unpulled_from``.

  The energy's points are the embeddings followed by the proxies; without same-class
  proxy-proxy attraction (``proxy_self_attraction=False``) ``unpulled_from`` is the first
  proxy row. Row and column are global point indices. Every path calls this only when the
  switch is off, so the default energy runs exactly as before.
  """
  return same_label & (row >= unpulled_from) & (col >= unpulled_from)


def pair_weight(squared_distance: jnp.ndarray, same_label: jnp.ndarray,
                field: FieldParams) -> jnp.ndarray:
  """w = psi'(d) / d, so that d psi(||x_a - x_b||) / d x_a = w * (x_a - x_b).

  Zero where no force acts: same-label pairs inside delta_att, different-label pairs beyond
  delta_rep, and pairs at the distance clamp.
  """
  d = clamped_distance(squared_distance)
  magnitude = field.alpha * d ** (-field.alpha - 2.0)
  attraction = jnp.where(d > field.delta_att, magnitude, 0.0)
  repulsion = jnp.where(d < field.delta_rep, -magnitude, 0.0)
  weight = jnp.where(same_label, attraction, repulsion)
  return jnp.where(squared_distance > MIN_SQUARED_DISTANCE, weight, 0.0)


def screen_threshold(field: FieldParams) -> float:
  """Cosine below which a different-label pair of unit vectors is surely beyond delta_rep.

  d < delta_rep  <=>  cos > 1 - delta_rep^2 / 2 for unit vectors. The screen compares a
  bfloat16 Gram matrix (bf16 inputs, float32 accumulation, bf16 output) against this value
  minus SCREEN_MARGIN, which bounds that product's error, so no force-carrying pair is missed.
  """
  return 1.0 - float(field.delta_rep) ** 2 / 2.0 - SCREEN_MARGIN


def pair_screen_threshold(row_squared_norms: jnp.ndarray, col_squared_norms: jnp.ndarray,
                          field: FieldParams) -> jnp.ndarray:
  """``screen_threshold`` for points of any norm, per (row, column) pair.

  d^2 = |a|^2 + |b|^2 - 2 a.b < delta_rep^2  <=>  a.b > (|a|^2 + |b|^2 - delta_rep^2) / 2, and
  the bf16 product's error scales with |a||b|. Equals ``screen_threshold`` for unit vectors.
  """
  rows, cols = row_squared_norms[:, None], col_squared_norms[None, :]
  return ((rows + cols - float(field.delta_rep) ** 2) / 2.0 -
          SCREEN_MARGIN * jnp.sqrt(rows * cols))


# |bf16 Gram - exact cosine| <= 2u + u^2 (both operands rounded, u = 2^-8) + u (output
# rounding, |cos| <= 1) + float32 accumulation (<= 1e-3 for D up to 10^4); rounded up.
SCREEN_MARGIN = 3 * 2.0**-8 + 2.0**-16 + 1e-3
