"""Metric-learning losses: PFML's potential energy and the paper's baselines."""

from pfml_jax.losses.potential_energy import potential_energy

__all__ = ["potential_energy"]
