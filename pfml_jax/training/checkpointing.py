"""Checkpoints with orbax: the train state, the input state and the resolved config together.

Kept: the last ``keep`` checkpoints and the best one by the validation metric. Saves are
asynchronous; ``wait()`` runs before any read-back and before exit. orbax writes each step to a
temporary folder and renames it when complete, so an interrupted save never replaces a good one.
Restores go against an abstract state that carries the current shardings, so a checkpoint
written on one device count or mesh restores onto another.
"""

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from pfml_jax.user_errors import MissingFileError


class Checkpoints:
  """The run's checkpoint folder, ``<workdir>/checkpoints/<step>/{state,input,config}``."""

  def __init__(self, workdir: str | Path, *, keep: int, selection_metric: str,
               read_only: bool = False):
    self.selection_metric = selection_metric
    best = lambda metrics: float(metrics[selection_metric])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policies.AnyPreservationPolicy([
            policies.LatestN(n=keep),
            policies.BestN(get_metric_fn=best, n=1, keep_checkpoints_without_metrics=False),
        ]),
        best_fn=best, best_mode="max", create=not read_only, read_only=read_only,
        enable_async_checkpointing=True)
    self.directory = Path(workdir).absolute() / "checkpoints"
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=("state", "input", "config"))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    """The step with the best validation metric; the latest when none was evaluated."""
    with_metrics = [s for s in self.manager.all_steps() if self.manager.metrics(s)]
    return self.manager.best_step() if with_metrics else self.latest_step()

  def resolve(self, which: str) -> int:
    """'latest', 'best' or a step number -> an existing step (clear error otherwise)."""
    steps = self.manager.all_steps()
    if not steps:
      raise MissingFileError(f"No checkpoint in {self.directory}: train first "
                             "(--mode=train) or point --workdir at a training run.")
    step = {"latest": self.latest_step, "best": self.best_step}.get(which, lambda: int(which))()
    if step not in steps:
      raise MissingFileError(f"No checkpoint for step {which!r} in {self.directory}; "
                             f"available steps: {sorted(steps)}.")
    return step

  def save(self, step: int, state: Any, input_state: dict, config: dict,
           metrics: dict[str, float] | None = None) -> None:
    """Starts an asynchronous save of step ``step`` (no-op if that step is saved already)."""
    if step in self.manager.all_steps():
      return
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), input=ocp.args.JsonSave(input_state),
        config=ocp.args.JsonSave(config)), metrics=metrics, force=True)

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """(state placed with the shardings of ``abstract_state``, input state) of ``step``."""
    self.wait()
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), input=ocp.args.JsonRestore()))
    return restored["state"], restored["input"]

  def metrics(self, step: int) -> dict | None:
    return self.manager.metrics(step)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()

  def __enter__(self) -> "Checkpoints":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def abstract_like(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs of ``tree`` (arrays or structs) carrying ``shardings``."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      tree, shardings)
