"""The train state: one pytree with everything a step changes."""

from typing import Any

import flax.struct
import jax
import optax


@flax.struct.dataclass
class TrainState:
  """step, trainable parameters {"model": {"backbone", "head"}, "proxies"} (plus "loss", the
  loss's own parameters, for a loss that has them: HIST), BatchNorm statistics (empty for
  backbones without BatchNorm) and the optimizer state."""

  step: jax.Array
  trainable: dict[str, Any]
  batch_stats: dict[str, Any]
  opt_state: optax.OptState

  @property
  def params(self) -> dict[str, Any]:
    return self.trainable["model"]

  @property
  def proxies(self) -> jax.Array | None:
    """(Q, D) proxies; None for a loss without them (the tree then has no "proxies")."""
    return self.trainable.get("proxies")

  def variables(self) -> dict[str, Any]:
    """The model's flax variables."""
    variables = {"params": self.params}
    if self.batch_stats:
      variables["batch_stats"] = self.batch_stats
    return variables
