"""Checkpoints with orbax: the train state, the input state and the resolved config together.

Kept: the last ``keep`` checkpoints and the best one by the validation metric. Saves are
asynchronous; ``wait()`` runs before any read-back and before exit. orbax writes each step to a
temporary folder and renames it when complete, so an interrupted save never replaces a good one.
Restores go against an abstract state that carries the current shardings, so a checkpoint
written on one device count or mesh restores onto another.

Verified: every checkpoint holds a digest item, the CRC-32C of each array's host bytes
(``state_digest.py``), computed when saving and checked on every restore, so bytes changed
inside an array file (which TensorStore's chunks carry no checksum for) are found and the array
named. All processes compute the same digests; process 0's copy is written.
Only finite states are saved (NonFiniteStateError otherwise), and a restored state holding a
non-finite array (written before that rule) counts as damaged. Checkpoints written before
digests existed restore with one warning.

Faults: a checkpoint that cannot be read back (damaged or cut files, an array that differs from
its digest, a JSON item such as ``metrics`` that does not parse, an empty step folder) is moved
aside to ``<workdir>/checkpoints_unreadable/<step>`` and the run resumes from the newest
readable one (in read-only use it is only named, and a step folder whose JSON is damaged is
left out); checkpoints whose metrics lack the selection metric rank last;
a save that fails for lack of disk space raises one ``CheckpointSaveError`` naming the folder,
the free space and the size needed; the temporary folders such a save leaves behind are
removed on the next start.
"""

import contextlib
import dataclasses
import errno
import gc
import json
import math
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from absl import logging
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from pfml_jax.checkpoint.state_digest import DIGEST_ALGORITHM, array_digest, array_names, host_values
from pfml_jax.user_errors import MissingFileError, UserInputError


TMP_SUFFIX = ".orbax-checkpoint-tmp"
# The JSON files orbax writes into a step folder: one that does not parse makes it unreadable.
JSON_FILES = ("_CHECKPOINT_METADATA", "metrics/metrics", "input/metadata", "config/metadata",
              "digest/metadata")


class CheckpointUnreadableError(UserInputError, RuntimeError):
  """A checkpoint on disk could not be restored (damaged or incomplete files). The user
  chooses another checkpoint or resumes, which moves it aside: one ``error:`` line."""


class CheckpointDamagedError(RuntimeError):
  """Restored arrays differ from their digest, or are not finite."""


class NonFiniteStateError(ValueError):
  """A state to save holds NaN or infinite values (``arrays``: their names)."""

  def __init__(self, arrays: list[str]):
    super().__init__(f"not finite: {arrays}")
    self.arrays = arrays


class CheckpointSaveError(OSError):
  """A checkpoint could not be written (e.g. the disk is full)."""


class Checkpoints:
  """The run's checkpoint folder, ``<workdir>/checkpoints/<step>/{state,input,config,digest}``
  (and ``metrics`` where the step was evaluated)."""

  def __init__(self, workdir: str | Path, *, keep: int, selection_metric: str,
               read_only: bool = False):
    self.selection_metric = selection_metric
    best = lambda metrics: _rank(metrics, selection_metric)
    self.read_only = read_only
    self.directory = Path(workdir).absolute() / "checkpoints"
    self.unreadable_directory = self.directory.parent / "checkpoints_unreadable"
    self._pending: tuple[int, int] | None = None  # (step, bytes) of the save in flight
    self._warned_unverified = False
    if not read_only:
      self.cleanup_partial_saves()
    left_out = self._set_aside_damaged_folders()
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policies.AnyPreservationPolicy([
            policies.LatestN(n=keep),
            policies.BestN(get_metric_fn=best, n=1, keep_checkpoints_without_metrics=False),
        ]),
        best_fn=best, best_mode="max", create=not read_only, read_only=read_only,
        enable_async_checkpointing=True,
        step_name_format=_WithoutSteps(ocp.step.standard_name_format(), left_out)
        if left_out else None)
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers={
        "state": ocp.StandardCheckpointHandler(), "input": ocp.JsonCheckpointHandler(),
        "config": ocp.JsonCheckpointHandler(), "digest": ocp.JsonCheckpointHandler()})
    if not read_only:
      self._warn_unranked()

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    """The step with the best validation metric; the latest when none recorded it.

    Checkpoints whose metrics lack the selection metric (it changed on resume) rank last."""
    ranked = [s for s in self.manager.all_steps()
              if self.selection_metric in (self.manager.metrics(s) or {})]
    return self.manager.best_step() if ranked else self.latest_step()

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

    Raises NonFiniteStateError (before writing anything) if an array of ``state`` is not
    finite, and CheckpointSaveError (here or from a later ``wait``) if the disk is full.
    """
    if step in self.manager.all_steps():
      return
    names, values = array_names(state), host_values(state)
    non_finite = [name for name, value in zip(names, values) if not np.isfinite(value).all()]
    if non_finite:
      raise NonFiniteStateError(non_finite)
    digest = {"algorithm": DIGEST_ALGORITHM,
              "arrays": {name: array_digest(value) for name, value in zip(names, values)}}
    self.wait()  # a failure of the previous save is reported as that step's
    self._pending = (step, state_bytes(state))
    with self._save_errors():
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), input=ocp.args.JsonSave(input_state),
          config=ocp.args.JsonSave(config), digest=ocp.args.JsonSave(digest)),
          metrics=metrics, force=True)

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
    restored = self._restore_verified(step, state=ocp.args.StandardRestore(abstract_state),
                                      input=ocp.args.JsonRestore())
    return restored["state"], restored["input"]

  def _restore_as_saved(self, step):
    self.wait()
    metadata = self.manager.item_metadata(step)["state"]
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            metadata.tree)
    restored = self._restore_verified(step, state=ocp.args.StandardRestore(abstract))
    return jax.device_get(restored["state"])

  def _restore_verified(self, step: int, **items):
    """The ``items`` of ``step``, its state checked against the digest recorded at save."""
    has_digest = (self.directory / str(step) / "digest").is_dir()
    if has_digest:
      items["digest"] = ocp.args.JsonRestore()
    with _abandoned_reads_collected():
      restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    self._verify(step, restored["state"], restored["digest"] if has_digest else None)
    return restored

  def _verify(self, step: int, state: Any, digest: dict | None) -> None:
    """Raises CheckpointDamagedError if an array of ``state`` differs from ``digest``, or, for
    a checkpoint written before digests (``digest`` None: restored with one warning), if one
    is not finite (saves since then refuse non-finite states)."""
    names, values = array_names(state), host_values(state)
    if digest is not None and digest.get("algorithm") == DIGEST_ALGORITHM:
      recorded = digest["arrays"]
      differ = [name for name, value in zip(names, values)
                if recorded.get(name) != array_digest(value)]
      if differ:
        raise CheckpointDamagedError(
            f"{_first(differ)} differs from the {DIGEST_ALGORITHM} digest recorded when it "
            "was saved: its files are damaged")
      return
    non_finite = [name for name, value in zip(names, values) if not np.isfinite(value).all()]
    if non_finite:
      raise CheckpointDamagedError(f"{_first(non_finite)} holds NaN or infinite values (saved "
                                   "by a diverged run)")
    if not self._warned_unverified:
      logging.warning("Checkpoint %d in %s has no array digests (written by an older version); "
                      "its arrays are restored unverified.", step, self.directory)
      self._warned_unverified = True

  def _set_aside_damaged_folders(self) -> frozenset[int]:
    """Moves aside the step folders orbax cannot list or read (a JSON file that does not parse
    would fail creating the manager; a folder without state, restoring); read-only, only names
    them. Returns the steps the manager must leave out (read-only: the damaged ones)."""
    damaged = {}
    for folder in self.directory.iterdir() if self.directory.is_dir() else ():
      problem = _folder_problem(folder) if folder.name.isdigit() and folder.is_dir() else None
      if problem:
        damaged[int(folder.name)] = problem
    if self.read_only:
      if damaged:
        logging.warning("Checkpoint(s) %s in %s are damaged and left out (%s); --mode=train "
                        "moves them aside.", sorted(damaged), self.directory,
                        "; ".join(f"{s}: {p}" for s, p in sorted(damaged.items())))
      return frozenset(damaged)
    _sync("checkpoint_folders_inspected")  # every process inspects before any folder moves
    for step, problem in sorted(damaged.items()):
      self._move_folder_aside(step, problem)
    return frozenset()

  def _warn_unranked(self) -> None:
    recorded = {s: self.manager.metrics(s) for s in self.manager.all_steps()}
    unranked = [s for s, metrics in recorded.items()
                if metrics and _rank(metrics, self.selection_metric) == -math.inf]
    if unranked:
      logging.warning("Checkpoint(s) %s were evaluated without %r (the selection metric "
                      "changed?); they rank last when choosing the best checkpoint.",
                      unranked, self.selection_metric)

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
    self._move_folder_aside(step, _summary(error))
    self.manager.reload()

  def _move_folder_aside(self, step: int, problem: str) -> None:
    source = self.directory / str(step)
    target = self.unreadable_directory / str(step)
    if target.exists():
      target = target.with_name(f"{step}.{int(time.time())}")
    logging.warning("Checkpoint %d in %s cannot be read (%s); moving it to %s.", step,
                    self.directory, problem, target)
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.move(str(source), str(target))
    _sync(f"checkpoint_moved_aside_{step}")

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


def state_bytes(tree: Any) -> int:
  """The bytes of the arrays in ``tree``: the size a checkpoint of it needs, about."""
  return int(sum(np.prod(x.shape, dtype=np.int64) * np.dtype(x.dtype).itemsize
                 for x in jax.tree.leaves(tree) if hasattr(x, "shape")))


@contextlib.contextmanager
def _abandoned_reads_collected():
  """A failed restore leaves orbax's other array reads unfinished; collected later, each prints
  an "Exception ignored in <coroutine ...>" or "Event loop is closed" traceback (thousands of
  lines). On failure they are collected here, their errors logged (to the log file) instead."""
  previous = sys.unraisablehook
  sys.unraisablehook = _log_unraisable
  try:
    yield
  except BaseException:
    gc.collect()
    raise
  finally:
    sys.unraisablehook = previous


def _log_unraisable(unraisable) -> None:
  logging.info("After a failed checkpoint read, ignored: %s: %s", unraisable.exc_type.__name__,
               str(unraisable.exc_value)[:200])


def _sync(name: str) -> None:
  """A barrier all processes pass together (nothing with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def _first(names: list[str]) -> str:
  return f"array {names[0]}" + (f" (and {len(names) - 1} more)" if len(names) > 1 else "")


def _rank(metrics: Any, selection_metric: str) -> float:
  """A checkpoint's rank: its selection metric; -inf (last) when it lacks it or is NaN."""
  value = metrics.get(selection_metric) if isinstance(metrics, dict) else None
  return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else -math.inf


def _folder_problem(folder: Path) -> str | None:
  """What makes step folder ``folder`` unreadable before orbax opens it, or None."""
  if not (folder / "state").is_dir():
    return "the folder holds no state: empty or incomplete"
  for name in JSON_FILES:
    path = folder / name
    try:
      if path.is_file():
        json.loads(path.read_text())
    except (ValueError, OSError) as error:  # ValueError: JSONDecodeError, UnicodeDecodeError
      return f"{path} cannot be parsed as JSON ({type(error).__name__}: {str(error)[:80]})"
  return None


@dataclasses.dataclass(frozen=True)
class _WithoutSteps:
  """orbax's step-folder naming, blind to the ``excluded`` steps (damaged folders a read-only
  reader must not open, since the manager reads every step's metrics when it starts)."""

  inner: Any
  excluded: frozenset[int]

  def build_name(self, step: int) -> str:
    return self.inner.build_name(step)

  def find_all(self, base_path):
    return (m for m in self.inner.find_all(base_path) if m.step not in self.excluded)

  def find_step(self, base_path, step: int):
    if step in self.excluded:
      raise ValueError(f"Checkpoint {step} in {base_path} is damaged and left out.")
    return self.inner.find_step(base_path, step)


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
