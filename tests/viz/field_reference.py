"""Independent float64 NumPy formulas of PFML's pair potentials in the plane (paper Eqs. 1-2).

    psi_att(d) = -max(d, delta_att)^-alpha      psi_rep(d) = min(d, delta_rep)^-alpha
    U = sum over ordered pairs a != b of psi(d_ab)
    dU/dx_a = 2 * sum_b psi'(d_ab) * (x_a - x_b) / d_ab   (each unordered pair counted twice)
"""

import numpy as np


def pair_potential(d, same, alpha, delta_att, delta_rep):
  return np.where(same, -np.maximum(d, delta_att) ** -alpha, np.minimum(d, delta_rep) ** -alpha)


def pair_derivative(d, same, alpha, delta_att, delta_rep):
  """d psi / d d: alpha d^-(alpha+1) outside delta_att (same), -alpha d^-(alpha+1) inside
  delta_rep (different), zero elsewhere."""
  magnitude = alpha * d ** (-alpha - 1.0)
  return np.where(same, np.where(d > delta_att, magnitude, 0.0),
                  np.where(d < delta_rep, -magnitude, 0.0))


def energy(points, labels, alpha, delta_att, delta_rep):
  points = np.asarray(points, np.float64)
  d = np.linalg.norm(points[:, None] - points[None], axis=-1)
  np.fill_diagonal(d, 1.0)  # self-pairs are excluded below
  same = labels[:, None] == labels[None]
  off_diagonal = ~np.eye(len(points), dtype=bool)
  return np.sum(pair_potential(d, same, alpha, delta_att, delta_rep)[off_diagonal])


def energy_gradient(points, labels, alpha, delta_att, delta_rep):
  points = np.asarray(points, np.float64)
  differences = points[:, None] - points[None]
  d = np.linalg.norm(differences, axis=-1)
  np.fill_diagonal(d, 1.0)  # self-pairs are excluded below
  weight = pair_derivative(d, labels[:, None] == labels[None], alpha, delta_att, delta_rep) / d
  np.fill_diagonal(weight, 0.0)
  return 2.0 * np.sum(weight[:, :, None] * differences, axis=1)


def class_potential(positions, points, labels, label, alpha, delta_att, delta_rep):
  d = np.linalg.norm(np.asarray(positions, np.float64)[:, None] -
                     np.asarray(points, np.float64)[None], axis=-1)
  return np.sum(pair_potential(d, labels[None] == label, alpha, delta_att, delta_rep), axis=1)
