"""Checkpoint faults on the real code path: a damaged checkpoint, a full disk, a non-finite step."""

import errno
import logging
import re

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from pfml_jax.checkpoint import checkpoints as checkpoints_lib
from pfml_jax.checkpoint.checkpoints import Checkpoints
from pfml_jax.training import trainer
from tests.tiny_run import tiny_config


def steps_on_disk(workdir):
  return sorted(Checkpoints(workdir, keep=5, selection_metric="recall@1",
                            read_only=True).manager.all_steps())


def damage(workdir, step):
  """Changes the first bytes (a compressed chunk's header) of the largest array data file of
  checkpoint ``step``: TensorStore fails to read it. (Bytes changed inside a chunk's payload
  read back without an error; the digest finds them: test_checkpoint_cli_faults.py.)"""
  data_files = (workdir / "checkpoints" / str(step) / "state").glob("ocdbt.process_*/d/*")
  target = max(data_files, key=lambda p: p.stat().st_size)
  data = bytearray(target.read_bytes())
  data[:8] = bytes(255 - b for b in data[:8])
  target.write_bytes(bytes(data))
  return target


def test_damaged_latest_checkpoint_is_moved_aside_and_the_run_resumes(image_folder, tmp_path,
                                                                      caplog):
  trainer.train_and_evaluate(tiny_config(image_folder, steps=4), str(tmp_path))
  assert steps_on_disk(tmp_path) == [2, 3, 4]
  damage(tmp_path, 4)

  # Eval mode names the unreadable checkpoint and the readable ones, and moves nothing.
  with pytest.raises(checkpoints_lib.CheckpointUnreadableError,
                     match=r"Checkpoint 4 .* cannot be read .*Readable checkpoints: \[3, 2\]"):
    trainer.evaluate_checkpoint(tiny_config(image_folder), str(tmp_path), "latest")
  assert steps_on_disk(tmp_path) == [2, 3, 4]
  assert not (tmp_path / "checkpoints_unreadable").exists()

  # Training moves it aside (not deleted), says so, and resumes from step 3.
  with caplog.at_level(logging.WARNING):
    result = trainer.train_and_evaluate(tiny_config(image_folder, steps=6), str(tmp_path))
  assert (tmp_path / "checkpoints_unreadable" / "4" / "state").is_dir()
  warnings = " ".join(r.getMessage() for r in caplog.records)
  assert "Checkpoint 4" in warnings and "resuming from step 3" in warnings, warnings
  assert result["final"]["step"] == 6 and steps_on_disk(tmp_path)[-1] == 6


def test_disk_full_during_a_save_is_one_clear_error_and_leftovers_are_removed(
    image_folder, tmp_path, monkeypatch, caplog):
  """orbax writes asynchronously: the ENOSPC of step 4's save surfaces in the next wait, with
  the step's temporary folder left behind."""
  save, wait = ocp.CheckpointManager.save, ocp.CheckpointManager.wait_until_finished
  failing = {}

  def full_disk_save(self, step, *args, **kwargs):
    if step == 4:
      (self.directory / "4.orbax-checkpoint-tmp-1700000000").mkdir()
      (self.directory / "4.orbax-checkpoint-tmp-1700000000" / "state").mkdir()
      failing["step"] = step
      return True
    return save(self, step, *args, **kwargs)

  def full_disk_wait(self):
    wait(self)
    if failing.pop("step", None) is not None:
      raise OSError(errno.ENOSPC, "No space left on device",
                    str(self.directory / "4.orbax-checkpoint-tmp-1700000000"))

  monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk_save)
  monkeypatch.setattr(ocp.CheckpointManager, "wait_until_finished", full_disk_wait)
  with pytest.raises(checkpoints_lib.CheckpointSaveError) as raised:
    trainer.train_and_evaluate(tiny_config(image_folder, steps=4), str(tmp_path))
  message = str(raised.value)
  assert raised.value.errno == errno.ENOSPC
  assert re.search(r"Saving checkpoint 4 to \S+checkpoints failed: no space left", message)
  assert re.search(r"\d\S* [KMGT]?i?B free; the checkpoint needs about \d", message), message
  assert "previous checkpoints ([2, 3]) are intact" in message, message
  assert raised.value.__suppress_context__  # one error, not orbax's chained tracebacks
  assert not list((tmp_path / "checkpoints").glob("*.orbax-checkpoint-tmp*"))
  monkeypatch.undo()
  assert steps_on_disk(tmp_path) == [2, 3]

  # A leftover of a failed save (e.g. the process was killed) is removed on the next start.
  (tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp-1700000001").mkdir()
  with caplog.at_level(logging.WARNING):
    result = trainer.train_and_evaluate(tiny_config(image_folder, steps=4), str(tmp_path))
  assert "Removed 1 incomplete checkpoint folder" in caplog.text
  assert not list((tmp_path / "checkpoints").glob("*.orbax-checkpoint-tmp*"))
  assert result["final"]["step"] == 4 and steps_on_disk(tmp_path) == [2, 3, 4]


def test_state_bytes_counts_the_arrays(image_folder):
  exp = trainer.build(tiny_config(image_folder))
  leaves = jax.tree.leaves(exp.abstract_state)
  assert checkpoints_lib.state_bytes(exp.abstract_state) == sum(x.size * x.dtype.itemsize
                                                              for x in leaves)


def test_non_finite_step_is_never_checkpointed(image_folder, tmp_path):
  """A save every step and metrics read once at the end: before the fix, the step after a
  skipped (non-finite) one was saved before its finiteness was read."""
  config = tiny_config(image_folder, steps=6, log_every_steps=100, **{
      "optim.learning_rate": 1e30, "optim.warmup_epochs": 0, "checkpoint.every_steps": 1})
  with pytest.raises(trainer.NonFiniteLossError, match="not finite") as raised:
    trainer.train_and_evaluate(config, str(tmp_path))
  failing = int(re.match(r"Step (\d+):", str(raised.value)).group(1))
  steps = steps_on_disk(tmp_path)
  assert steps and all(step <= failing for step in steps), (failing, steps)
  exp = trainer.build(config)
  checkpoints = Checkpoints(tmp_path, keep=5, selection_metric="recall@1", read_only=True)
  for step in steps:
    state, _ = checkpoints.restore(step, exp.abstract_sharded_state())
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state)))


def test_a_config_that_matches_no_checkpoint_moves_nothing(image_folder, tmp_path):
  """Every restore failing means a changed config, not damage: nothing is moved aside."""
  trainer.train_and_evaluate(tiny_config(image_folder, steps=2), str(tmp_path))
  changed = tiny_config(image_folder, steps=4, **{"model.embedding_dim": 8})
  with pytest.raises(checkpoints_lib.CheckpointUnreadableError,
                     match=r"steps \[2\]\) can be restored.*Nothing was moved"):
    trainer.train_and_evaluate(changed, str(tmp_path))
  assert steps_on_disk(tmp_path) == [2]
  assert not (tmp_path / "checkpoints_unreadable").exists()


def test_a_non_finite_state_is_never_written(tmp_path):
  """The checkpoint's own check, behind the step's guard: nothing non-finite reaches disk."""
  state = {"params": {"w": jax.numpy.ones((3,))}, "batch_stats": {"var": jax.numpy.ones((2,))}}
  with Checkpoints(tmp_path, keep=2, selection_metric="recall@1") as checkpoints:
    checkpoints.save(1, state, {}, {})
    broken = dict(state, batch_stats={"var": jax.numpy.array([1.0, np.inf])})
    with pytest.raises(checkpoints_lib.NonFiniteStateError) as raised:
      checkpoints.save(2, broken, {}, {})
    assert raised.value.arrays == ["batch_stats/var"]
  assert steps_on_disk(tmp_path) == [1]
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1"]
