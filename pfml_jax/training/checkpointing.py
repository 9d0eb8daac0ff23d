"""Checkpoints with orbax: the train state, the input state and the resolved config together.

Kept: the last ``keep`` checkpoints and the best one by the validation metric. Saves are
asynchronous; ``wait()`` runs before any read-back and before exit. orbax writes each step to a
temporary folder and renames it when complete, so an interrupted save never replaces a good one.
Restores go against an abstract state that carries the current shardings, so a checkpoint
written on one device count or mesh restores onto another.

Faults: a checkpoint that cannot be read back (e.g. damaged by a bad copy) is moved aside to
``<workdir>/checkpoints_unreadable/<step>`` and the run resumes from the newest readable one;
a save that fails for lack of disk space raises one ``CheckpointSaveError`` naming the folder,
the free space and the size needed; the temporary folders such a save leaves behind are
removed on the next start.
"""

import errno
import re
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from absl import logging
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from pfml_jax.user_errors import MissingFileError


TMP_SUFFIX = ".orbax-checkpoint-tmp"


class CheckpointUnreadableError(RuntimeError):
  """A checkpoint on disk could not be restored (damaged or incomplete files)."""


class CheckpointSaveError(OSError):
  """A checkpoint could not be written (e.g. the disk is full)."""


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
    self.read_only = read_only
    self.directory = Path(workdir).absolute() / "checkpoints"
    self.unreadable_directory = self.directory.parent / "checkpoints_unreadable"
    self._pending: tuple[int, int] | None = None  # (step, bytes) of the save in flight
    if not read_only:
      self.cleanup_partial_saves()
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers={
        "state": ocp.StandardCheckpointHandler(), "input": ocp.JsonCheckpointHandler(),
        "config": ocp.JsonCheckpointHandler()})

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
    """Starts an asynchronous save of step ``step`` (no-op if that step is saved already).

    Raises CheckpointSaveError (here or from a later ``wait``) if the disk is full.
    """
    if step in self.manager.all_steps():
      return
    self.wait()  # a failure of the previous save is reported as that step's
    self._pending = (step, state_bytes(state))
    with self._save_errors():
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), input=ocp.args.JsonSave(input_state),
          config=ocp.args.JsonSave(config)), metrics=metrics, force=True)

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """(state placed with the shardings of ``abstract_state``, input state) of ``step``.

    Raises CheckpointUnreadableError naming the step (and, in read-only mode, the steps that
    do restore) if its files cannot be read.
    """
    return self._explained(step, lambda s: self._restore(s, abstract_state))

  def _explained(self, step: int, restore):
    """``restore(step)``, its failure raised as CheckpointUnreadableError."""
    try:
      return restore(step)
    except Exception as error:  # pylint: disable=broad-except
      if not self.read_only:
        raise self._unreadable(step, error) from error
      readable = [s for s in sorted(self.manager.all_steps(), reverse=True)
                  if s != step and self._readable(s, restore)]
      raise CheckpointUnreadableError(
          f"Checkpoint {step} in {self.directory} cannot be read ({_summary(error)}); it is "
          f"damaged or incomplete. Readable checkpoints: {readable or 'none'}. Evaluate one "
          "of those (e.g. --checkpoint=<step>), or rerun --mode=train, which moves the "
          f"unreadable one aside to {self.unreadable_directory} and resumes from the newest "
          "readable one.") from None

  def restore_config(self, step: int) -> dict:
    """The resolved config checkpoint ``step`` was written with."""
    self.wait()
    return self.manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore()))["config"]

  def restore_as_saved(self, step: int) -> dict:
    """The state of ``step`` as nested dicts of host arrays, shaped as the checkpoint records
    them (no abstract state needed: for reading a model out of a run)."""
    return self._explained(step, self._restore_as_saved)

  def restore_latest_readable(self, abstract_state: Any) -> tuple[int, Any, dict] | None:
    """(step, state, input state) of the newest checkpoint that restores; None if none exist.

    The newer ones that failed are moved to ``<workdir>/checkpoints_unreadable`` (not deleted)
    and named in a warning. They are moved only once an older checkpoint has restored into the
    same abstract state, so a config that no longer matches the checkpoints (every restore
    fails) moves nothing: it raises CheckpointUnreadableError naming the steps and the error.
    """
    self.wait()
    failed = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        state, input_state = self._restore(step, abstract_state)
      except Exception as error:  # pylint: disable=broad-except
        logging.warning("Checkpoint %d in %s cannot be read: %s", step, self.directory,
                        _summary(error))
        failed.append((step, error))
        continue
      for bad, error in failed:
        self._move_aside(bad, error)
      if failed:
        logging.warning("Checkpoint(s) %s could not be read and were moved to %s; resuming "
                        "from step %d, the newest readable checkpoint.",
                        [bad for bad, _ in failed], self.unreadable_directory, step)
      return step, state, input_state
    if failed:
      raise CheckpointUnreadableError(
          f"None of the checkpoints in {self.directory} (steps {[s for s, _ in failed]}) can "
          f"be restored; the newest fails with {_summary(failed[0][1])}. If the config changed "
          "(model, loss, optimizer), resume with the config the run was trained with; if the "
          "files are damaged, restore them from a good copy or move the folder away to train "
          "from scratch. Nothing was moved.")
    return None

  def cleanup_partial_saves(self) -> list[Path]:
    """Removes the ``*.orbax-checkpoint-tmp*`` folders an interrupted or failed save left."""
    if not self.directory.is_dir() or jax.process_index() != 0:
      return []
    leftovers = sorted(p for p in self.directory.iterdir() if TMP_SUFFIX in p.name)
    for path in leftovers:
      shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    if leftovers:
      logging.warning("Removed %d incomplete checkpoint folder(s) left by a failed or "
                      "interrupted save: %s", len(leftovers), [p.name for p in leftovers])
    return leftovers

  def metrics(self, step: int) -> dict | None:
    return self.manager.metrics(step)

  def wait(self) -> None:
    """Waits for the save in flight; raises CheckpointSaveError if it failed."""
    with self._save_errors():
      self.manager.wait_until_finished()
    self._pending = None

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self.manager.close()

  # -- internals -------------------------------------------------------------------------------
  def _restore(self, step, abstract_state):
    self.wait()
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), input=ocp.args.JsonRestore()))
    return restored["state"], restored["input"]

  def _restore_as_saved(self, step):
    self.wait()
    metadata = self.manager.item_metadata(step)["state"]
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            metadata.tree)
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract)))
    return jax.device_get(restored["state"])

  def _readable(self, step, restore) -> bool:
    try:
      restore(step)
      return True
    except Exception:  # pylint: disable=broad-except
      return False

  def _unreadable(self, step, error) -> CheckpointUnreadableError:
    return CheckpointUnreadableError(
        f"Checkpoint {step} in {self.directory} cannot be read ({_summary(error)}); it is "
        "damaged or incomplete.")

  def _move_aside(self, step: int, error: Exception) -> None:
    source = self.directory / str(step)
    target = self.unreadable_directory / str(step)
    if target.exists():
      target = target.with_name(f"{step}.{int(time.time())}")
    logging.warning("Checkpoint %d in %s cannot be read (%s); moving it to %s.", step,
                    self.directory, _summary(error), target)
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.move(str(source), str(target))
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices(f"checkpoint_moved_aside_{step}")
    self.manager.reload()

  class _SaveErrors:
    def __init__(self, checkpoints):
      self.checkpoints = checkpoints

    def __enter__(self):
      return self

    def __exit__(self, kind, error, traceback):
      if error is None or not _is_disk_full(error):
        return False
      checkpoints = self.checkpoints
      step, needed = checkpoints._pending or (None, 0)
      checkpoints._pending = None
      free = shutil.disk_usage(checkpoints.directory if checkpoints.directory.exists()
                               else checkpoints.directory.parent).free
      checkpoints.cleanup_partial_saves()
      try:
        kept = sorted(checkpoints.manager.all_steps(read=True))
      except Exception:  # pylint: disable=broad-except
        kept = "unknown"
      raise CheckpointSaveError(
          errno.ENOSPC,
          f"Saving checkpoint {step} to {checkpoints.directory} failed: no space left on the "
          f"device ({_size(free)} free; the checkpoint needs about {_size(needed)}). The "
          f"previous checkpoints ({kept}) are intact. Free space, lower checkpoint.keep, or "
          "point --workdir at a larger disk, then rerun the same command to resume."
      ) from None

  def _save_errors(self):
    return Checkpoints._SaveErrors(self)

  def __enter__(self) -> "Checkpoints":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def abstract_like(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs of ``tree`` (arrays or structs) carrying ``shardings``."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      tree, shardings)


def state_bytes(tree: Any) -> int:
  """The bytes of the arrays in ``tree``: the size a checkpoint of it needs, about."""
  return int(sum(np.prod(x.shape, dtype=np.int64) * np.dtype(x.dtype).itemsize
                 for x in jax.tree.leaves(tree) if hasattr(x, "shape")))


def _is_disk_full(error: BaseException, seen=None) -> bool:
  """Whether ``error`` or anything it wraps (cause, context, exception group) is ENOSPC."""
  seen = seen or set()
  if error is None or id(error) in seen:
    return False
  seen.add(id(error))
  if isinstance(error, OSError) and error.errno == errno.ENOSPC:
    return True
  if "No space left on device" in str(error):
    return True
  inner = list(getattr(error, "exceptions", ())) + [error.__cause__, error.__context__]
  return any(_is_disk_full(e, seen) for e in inner)


def _summary(error: BaseException) -> str:
  """The first line of an error, shortened: TensorStore's messages run long."""
  text = str(error)
  line = (text.strip().splitlines() or [""])[0].split(" See full TensorStore details")[0][:200]
  cause = re.search(r"[A-Za-z_]+\(\) failed: [^\"\n\]\[]*|[^\"\n]*corrupt[^\"\n]*", text)
  if cause and cause.group(0).strip() not in line:
    line = f"{line} ... {cause.group(0).strip()[:200]}"
  return f"{type(error).__name__}: {line}"


def _size(nbytes: int) -> str:
  for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
    if nbytes < 1024 or unit == "TiB":
      return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
    nbytes /= 1024
