"""The training loop: step -> log -> evaluate and checkpoint -> preempt, until the last step.

At an evaluation step the evaluation runs before the save, because the checkpoint is ranked
by its metric. A step's metrics are read from the device one step late (so the device stays
busy), except before a log or a save: a step whose loss, gradient or any state array is not
finite is never applied nor saved, and the loop stops with the checkpoints of the steps before
it, raising NonFiniteLossError naming the arrays.
"""

import collections
import dataclasses
import functools
from typing import Any, Callable, Iterable

import jax
import numpy as np
from absl import logging
from tqdm import tqdm

from pfml_jax.checkpoint.checkpoints import NonFiniteStateError
from pfml_jax.checkpoint.state_digest import array_names
from pfml_jax.parallel import mesh as mesh_lib
from pfml_jax.settings import RunLength
from pfml_jax.training.chrono import Chrono
from pfml_jax.training.preemption import Preemption


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss, gradient or state array; the message names
  them, and the step was neither applied nor saved."""


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


@dataclasses.dataclass(frozen=True)
class StepRunner:
  """One training step as the loop runs it: the compiled step with its device-resident data,
  the run's random key (folded with the step) and the mesh the host batches are placed on."""

  train_step: Callable
  device_data: dict
  rng: jax.Array
  mesh: jax.sharding.Mesh

  @functools.cached_property
  def _rows(self) -> jax.sharding.NamedSharding:
    return mesh_lib.batch_sharding(self.mesh)

  def __call__(self, state, host_batch: dict, step: int):
    batch = {k: mesh_lib.global_array(v, self._rows) for k, v in host_batch.items()}
    return self.train_step(state, self.device_data, batch, jax.random.fold_in(self.rng, step))


def train_loop(state, *, step_runner: StepRunner, batches: Iterable[dict], start_step: int,
               cadence: Cadence, length: RunLength, writer, checkpoints,
               evaluate: Callable[[Any, int], dict]) -> LoopEnd:
  """Runs steps ``start_step`` .. ``cadence.total_steps - 1``.

  Nine parameters, each its own concern (the state; how a step runs; the batches and where
  they start; when to log, evaluate and save; the rates' denominators; where metrics, states
  and evaluations go). ``checkpoints`` is the run's one channel to its checkpoints
  (``run_checkpoints.py``):
  ``save(step, state, metrics)`` starts one; ``evaluate(state, step)`` returns the metrics
  that rank it. ``length`` gives the batch size and epoch length of the logged rates. Returns
  at the end, or after saving on an agreed SIGTERM or SIGINT.
  """
  preemption = Preemption()
  chrono = Chrono()
  progress = tqdm(total=cadence.total_steps, initial=start_step, desc="train", unit="step",
                  disable=jax.process_index() != 0, dynamic_ncols=True)
  pending, window = None, []
  names = array_names(state)

  def read(metrics, step):
    window.append(_check_finite(jax.device_get(metrics), step, checkpoints, names))

  try:
    for step, host_batch in zip(range(start_step, cadence.total_steps), batches):
      state, metrics = step_runner(state, host_batch, step)
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
        _log(writer, progress, done, window, chrono.window(len(window), length.batch_size),
             length.steps_per_epoch)
        window = []
      if save_now:
        with chrono.paused(pending=state):
          _save_finite(done, state, evaluate(state, done) if evaluate_now else None,
                       checkpoints)
      if stop:
        checkpoints.wait()
        logging.warning("Stopped at step %d on %s; rerun the same command to resume.", done,
                        preemption.requested or "another process's stop signal")
        return LoopEnd(state, done, preempted=True)
    if pending is not None:
      _check_finite(jax.device_get(pending), cadence.total_steps - 1, checkpoints, names)
  finally:
    progress.close()
    preemption.restore()
    checkpoints.wait()
  return LoopEnd(state, cadence.total_steps, preempted=False)


def _log(writer, progress, done: int, window: list[dict], timing: dict, steps_per_epoch: int):
  summary = {k: float(np.mean([m[k] for m in window])) for k in window[0]
             if k not in ("finite", "finite_arrays")}
  summary.update(timing, epoch=done / steps_per_epoch)
  writer.write_scalars(done, summary)
  progress.set_postfix({k: f"{summary[k]:.4g}" for k in ("loss", "loss_above_floor")
                        if k in summary})


def _check_finite(metrics: dict, step: int, checkpoints, names: list[str]) -> dict:
  """``metrics`` of a step whose loss, gradient and new state are finite; NonFiniteLossError
  naming what is not, otherwise."""
  if bool(metrics["finite"]):
    return metrics
  loss_finite = np.isfinite(metrics["loss"])
  what = [] if loss_finite else [f"loss={metrics['loss']}"]
  if not np.isfinite(metrics["grad_norm"]):
    what.append(f"gradient norm={metrics['grad_norm']}")
  arrays = [name for name, ok in zip(names, metrics["finite_arrays"]) if not ok]
  if arrays:
    what.append(_arrays(arrays))
  loss = f" (loss={metrics['loss']})" if loss_finite else ""
  _raise_non_finite(f"Step {step}: not finite: {'; '.join(what)}{loss}. That step was not "
                    "applied", checkpoints)


def _save_finite(step: int, state, metrics: dict | None, checkpoints) -> None:
  """``checkpoints.save(step, state, metrics)``; NonFiniteLossError if the state holds a
  non-finite array (the checkpoint's own check: nothing non-finite reaches disk)."""
  try:
    checkpoints.save(step, state, metrics)
  except NonFiniteStateError as error:
    _raise_non_finite(f"Step {step}: the state to save is not finite: "
                      f"{_arrays(error.arrays)}. It was not saved", checkpoints)


def _raise_non_finite(what: str, checkpoints) -> None:
  checkpoints.wait()
  raise NonFiniteLossError(
      f"{what}, and the checkpoints in {checkpoints.directory} (latest: "
      f"{checkpoints.latest_step()}) hold only finite values. Lower optim.learning_rate or "
      "enable optim.clip (or check the inputs), then rerun to resume from the latest "
      "checkpoint.")


def _arrays(names: list[str], shown: int = 3) -> str:
  """e.g. "12 array(s) of the new state (12 in batch_stats; e.g. batch_stats/backbone/...)"."""
  parts = collections.Counter(name.split("/")[0] for name in names)
  counts = ", ".join(f"{count} in {part}" for part, count in parts.items())
  return f"{len(names)} array(s) of the new state ({counts}; e.g. {', '.join(names[:shown])})"
