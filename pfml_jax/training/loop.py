"""The training loop: step -> log -> evaluate and checkpoint -> preempt, until the last step.

At an evaluation step the evaluation runs before the save, because the checkpoint is ranked
by its metric. A step's metrics are read from the device one step late (so the device stays
busy), except before a log or a save: a step whose loss or gradient is not finite is never
saved, and the loop stops with the checkpoints of the steps before it.
"""

import dataclasses
from typing import Any, Callable, Iterable

import jax
import numpy as np
from absl import logging
from tqdm import tqdm

from pfml_jax.training import mesh as mesh_lib
from pfml_jax.training.chrono import Chrono
from pfml_jax.training.preemption import Preemption


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss or gradient."""


@dataclasses.dataclass(frozen=True)
class Cadence:
  """When the loop logs, evaluates, saves and checks for preemption (``done`` = steps run)."""

  total_steps: int
  log_every: int
  eval_every: int
  checkpoint_every: int
  preemption_every: int  # 1 in a single process; the log cadence with several

  def log(self, done: int) -> bool:
    return done % self.log_every == 0 or done == self.total_steps

  def evaluate(self, done: int) -> bool:
    return done % self.eval_every == 0 or done == self.total_steps

  def checkpoint(self, done: int) -> bool:
    return done % self.checkpoint_every == 0

  def check_preemption(self, done: int) -> bool:
    return done % self.preemption_every == 0 or done == self.total_steps


@dataclasses.dataclass(frozen=True)
class LoopEnd:
  state: Any
  step: int
  preempted: bool


def train_loop(state, *, train_step: Callable, device_data: dict, batches: Iterable[dict],
               rng: jax.Array, start_step: int, cadence: Cadence, batch_size: int,
               steps_per_epoch: int, mesh: jax.sharding.Mesh, writer, checkpoints,
               save: Callable[[int, Any, dict | None], None],
               evaluate: Callable[[Any, int], dict]) -> LoopEnd:
  """Runs steps ``start_step`` .. ``cadence.total_steps - 1``.

  ``save(step, state, metrics)`` starts a checkpoint; ``evaluate(state, step)`` returns the
  metrics that rank it. Returns at the end, or after saving on an agreed SIGTERM or SIGINT.
  """
  rows = mesh_lib.batch_sharding(mesh)
  preemption = Preemption()
  chrono = Chrono()
  progress = tqdm(total=cadence.total_steps, initial=start_step, desc="train", unit="step",
                  disable=jax.process_index() != 0, dynamic_ncols=True)
  pending, window = None, []

  def read(metrics, step):
    window.append(_check_finite(jax.device_get(metrics), step, checkpoints))

  try:
    for step, host_batch in zip(range(start_step, cadence.total_steps), batches):
      batch = {k: mesh_lib.global_array(v, rows) for k, v in host_batch.items()}
      state, metrics = train_step(state, device_data, batch, jax.random.fold_in(rng, step))
      if pending is not None:  # the previous step's metrics: the device is busy with this one
        read(pending, step - 1)
      pending = metrics
      progress.update(1)
      done = step + 1
      stop = cadence.check_preemption(done) and preemption.agreed()
      evaluate_now = cadence.evaluate(done)
      save_now = stop or evaluate_now or cadence.checkpoint(done)
      if save_now or cadence.log(done):
        read(pending, step)
        pending = None
      if cadence.log(done):
        _log(writer, progress, done, window, chrono.window(len(window), batch_size),
             steps_per_epoch)
        window = []
      if save_now:
        with chrono.paused(pending=state):
          save(done, state, evaluate(state, done) if evaluate_now else None)
      if stop:
        checkpoints.wait()
        logging.warning("Stopped at step %d on %s; rerun the same command to resume.", done,
                        preemption.requested or "another process's stop signal")
        return LoopEnd(state, done, preempted=True)
    if pending is not None:
      _check_finite(jax.device_get(pending), cadence.total_steps - 1, checkpoints)
  finally:
    progress.close()
    preemption.restore()
    checkpoints.wait()
  return LoopEnd(state, cadence.total_steps, preempted=False)


def _log(writer, progress, done: int, window: list[dict], timing: dict, steps_per_epoch: int):
  summary = {k: float(np.mean([m[k] for m in window])) for k in window[0] if k != "finite"}
  summary.update(timing, epoch=done / steps_per_epoch)
  writer.write_scalars(done, summary)
  progress.set_postfix({k: f"{summary[k]:.4g}" for k in ("loss", "loss_above_floor")
                        if k in summary})


def _check_finite(metrics: dict, step: int, checkpoints) -> dict:
  if not bool(metrics["finite"]):
    checkpoints.wait()
    raise NonFiniteLossError(
        f"Step {step}: the loss or its gradient is not finite (loss={metrics['loss']}, "
        f"grad norm={metrics['grad_norm']}). That step was not applied and the checkpoints in "
        f"{checkpoints.directory} (latest: {checkpoints.latest_step()}) are from before it. "
        "Lower optim.learning_rate, enable optim.clip, or check the inputs.")
  return metrics
