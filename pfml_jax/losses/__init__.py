"""Metric-learning losses: PFML's potential energy and the paper's baselines."""

from pfml_jax.losses.energy_floor import energy_floor
from pfml_jax.losses.potential_energy import EnergyExecution, potential_energy
from pfml_jax.losses.registry import LOSSES, Loss, make_loss

__all__ = ["LOSSES", "EnergyExecution", "Loss", "energy_floor", "make_loss", "potential_energy"]
