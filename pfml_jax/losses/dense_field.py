"""The dense path of the potential-field energy: every pair, P x P x D, plain autodiff.

Short and obviously right; memory grows as P^2 * D, so it serves small point sets and is the
reference the fast paths are tested against (besides independent float64 code).
"""

import jax.numpy as jnp

from pfml_jax.losses.potentials import (FieldParams, clamped_distance, pair_potential,
                                        unpulled_pairs)


def dense_energy(points: jnp.ndarray, labels: jnp.ndarray, field: FieldParams,
                 unpulled_from: int | None = None) -> jnp.ndarray:
  """Sum of psi over all ordered pairs a != b of valid points (label >= 0).

  Args:
    points: (P, D) float32 points (already L2-normalised where that is wanted).
    labels: (P,) int labels; negative labels mark padding rows that contribute nothing.
    field: the potential's hyperparameters.
    unpulled_from: same-label pairs whose two rows both lie at or after this row add nothing
      (``potentials.unpulled_pairs``); None: every pair counts.
  Returns:
    The float32 energy.
  """
  # Distances from explicit differences: a Gram matrix loses the digits of 2 - 2cos that
  # matter near delta (cos ~ 0.98) and gives garbage for coincident points.
  differences = points[:, None, :] - points[None, :, :]
  distance = clamped_distance(jnp.sum(differences * differences, axis=-1))
  valid = labels >= 0
  same = labels[:, None] == labels[None, :]
  counted = valid[:, None] & valid[None, :] & ~jnp.eye(labels.shape[0], dtype=bool)
  if unpulled_from is not None:
    rows = jnp.arange(labels.shape[0])
    counted &= ~unpulled_pairs(rows[:, None], rows[None, :], same, unpulled_from)
  potential = pair_potential(distance, same, field)
  return jnp.sum(jnp.where(counted, potential, 0.0))
