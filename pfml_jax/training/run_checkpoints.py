"""A run's one channel to its checkpoints, for the loop and the final report: every save
carries the input state at its step and the run's config; restores give the state the run's
set-up expects (``setup.abstract_sharded_state``)."""

import dataclasses
from typing import Any

from pfml_jax.checkpoint.checkpoints import Checkpoints
from pfml_jax.training.setup import TrainSetup, input_state


@dataclasses.dataclass(frozen=True)
class RunCheckpoints:
  """``checkpoints`` as this run saves and reads them."""

  checkpoints: Checkpoints
  setup: TrainSetup
  train_input: Any  # the run's TrainInput: its state at a step is saved with the checkpoint
  config_json: dict

  @property
  def directory(self):
    return self.checkpoints.directory

  def save(self, step: int, state, metrics: dict | None) -> None:
    """Starts saving ``state`` at ``step`` (ranked by ``metrics`` when given)."""
    self.checkpoints.save(step, state, input_state(self.setup, self.train_input, step),
                          self.config_json, metrics)

  def wait(self) -> None:
    self.checkpoints.wait()

  def latest_step(self) -> int | None:
    return self.checkpoints.latest_step()

  def best_step(self) -> int | None:
    return self.checkpoints.best_step()

  def metrics(self, step: int) -> dict | None:
    return self.checkpoints.metrics(step)

  def restore_variables(self, step: int) -> dict:
    """The model variables of the checkpoint at ``step``."""
    return self.checkpoints.restore(step, self.setup.abstract_sharded_state())[0].variables()
