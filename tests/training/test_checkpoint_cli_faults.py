"""Checkpoint faults through the command line, each on a copy of one tiny finished run (a
BatchNorm backbone, checkpoints 2, 3 and 4, validation metrics at 3 and 4): bytes flipped
inside an array file, a damaged metrics JSON beside an empty step folder, a checkpoint from
before digests, a new selection metric on resume, and a run that diverges."""

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from pfml_jax.checkpoint.checkpoints import Checkpoints
from tests.colour_images import write_colour_classes

REPO = Path(__file__).resolve().parents[2]

CONFIG = '''
from tests.tiny_run import tiny_config


def get_config():
  return tiny_config({root!r}, **{{"model.backbone": "resnet50_tiny"}})
'''

# The warnings of this project's checkpoint, loop and trainer modules (absl's format).
OWN_WARNING = re.compile(r"^W\d{4} [\d:.]+ +\d+ (checkpoints|loop|trainer)\.py:\d+\] ")


def run(config: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
  """``python -m pfml_jax.main`` on the tiny config, as a user runs it (one CPU device)."""
  return run_module("pfml_jax.main", f"--config={config}", f"--workdir={workdir}", *args)


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)


def own_lines(result: subprocess.CompletedProcess) -> list[str]:
  """The ``error:`` and warning lines the run printed; fails on any traceback."""
  assert "Traceback" not in result.stderr, result.stderr
  assert "Event loop is closed" not in result.stderr, result.stderr
  return [line for line in result.stderr.splitlines()
          if line.startswith("error:") or OWN_WARNING.match(line)]


def steps_on_disk(workdir: Path) -> list[int]:
  return sorted(Checkpoints(workdir, keep=5, selection_metric="recall@1",
                            read_only=True).manager.all_steps())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("cli_faults")
  (root / "images").mkdir()
  config = root / "tiny.py"
  config.write_text(CONFIG.format(root=str(write_colour_classes(root / "images"))))
  result = run(config, root / "run", "--config.steps=4", "--config.plots=true")
  assert result.returncode == 0, result.stderr
  assert steps_on_disk(root / "run") == [2, 3, 4]
  # The run draws its pictures at the end and says where they are.
  assert sorted(p.name for p in (root / "run" / "plots").iterdir()) == sorted(
      ["training_curves.png", "retrieval_grid.png", "embedding_map.png"])
  summary = json.loads((root / "run" / "eval" / "summary.json").read_text())
  last = result.stdout.strip().splitlines()[-1]  # the run ends by saying what it produced
  assert last.startswith(f"Test recall@1 {summary['test']['recall@1']:.3f}, "), last
  assert f"at step {summary['step']} (" in last and f"{root / 'run'}/eval/summary.json" in last
  assert last.endswith(f"; pictures: {root / 'run'}/plots/"), last
  log = (root / "run" / "logs" / "main.process0.log").read_text()
  for notice in ("Requested `tracked_metric`", "read_only=True", "Given directory is read only"):
    assert notice not in result.stderr, result.stderr  # orbax notices asking nothing: log only
  assert "Requested `tracked_metric`" in log
  return config, root / "run"


@pytest.fixture
def run_copy(finished_run, tmp_path):
  config, workdir = finished_run
  shutil.copytree(workdir, tmp_path / "run")
  return config, tmp_path / "run"


def flip_bytes(workdir: Path, step: int) -> None:
  """Inverts 64 bytes in the middle of the largest array data file of checkpoint ``step``:
  TensorStore reads the changed values back without an error."""
  files = (workdir / "checkpoints" / str(step) / "state").glob("ocdbt.process_*/d/*")
  target = max(files, key=lambda p: p.stat().st_size)
  data = bytearray(target.read_bytes())
  middle = len(data) // 2
  data[middle:middle + 64] = bytes(255 - b for b in data[middle:middle + 64])
  target.write_bytes(bytes(data))


def test_bytes_flipped_inside_an_array_file_are_found_and_the_run_resumes(run_copy):
  config, workdir = run_copy
  flip_bytes(workdir, 4)

  evaluation = run(config, workdir, "--mode=eval", "--checkpoint=latest")
  assert evaluation.returncode == 2, evaluation.stderr
  (line,) = own_lines(evaluation)
  assert re.match(r"error: Checkpoint 4 .* cannot be read \(CheckpointDamagedError: array "
                  r"\S+ differs from the crc32c digest", line), line
  assert "Readable checkpoints: [3, 2]" in line
  image = next(config.parent.glob("images/*/*.jpg"))  # the fixture's image folder
  embedding = run_module("pfml_jax.inference", "embed", f"--workdir={workdir}",
                         "--checkpoint=latest", f"--images={image}",
                         f"--out={workdir.parent / 'embedded'}")
  assert embedding.returncode == 2, embedding.stderr
  (line,) = own_lines(embedding)
  assert line.startswith("error: Checkpoint 4 ") and "crc32c digest" in line, line

  resumed = run(config, workdir, "--config.steps=6")
  assert resumed.returncode == 0, resumed.stderr
  lines = own_lines(resumed)
  assert len(lines) == 3, lines  # cannot be read; moved aside; resuming from 3
  assert all("Checkpoint 4" in line or "[4]" in line for line in lines), lines
  assert "differs from the crc32c digest" in lines[0] and "resuming from step 3" in lines[2]
  assert (workdir / "checkpoints_unreadable" / "4" / "state").is_dir()
  assert steps_on_disk(workdir)[-1] == 6


def test_damaged_metrics_and_an_empty_step_folder_are_left_out_then_moved_aside(run_copy):
  config, workdir = run_copy
  metrics = workdir / "checkpoints" / "4" / "metrics" / "metrics"
  metrics.write_text(metrics.read_text()[:20])  # cut: not JSON
  (workdir / "checkpoints" / "40").mkdir()
  for path in (workdir / "eval").glob("step_*.json"):
    path.unlink()

  evaluation = run(config, workdir, "--mode=eval", "--checkpoint=best")
  assert evaluation.returncode == 0, evaluation.stderr
  (line,) = own_lines(evaluation)
  assert "Checkpoint(s) [4, 40]" in line and "left out" in line, line
  assert str(metrics) in line and "holds no state" in line, line
  assert [p.name for p in (workdir / "eval").glob("step_*.json")] == ["step_3.json"]
  assert steps_on_disk(workdir) == [2, 3]  # a reader moves nothing

  resumed = run(config, workdir, "--config.steps=6")
  assert resumed.returncode == 0, resumed.stderr
  lines = own_lines(resumed)
  assert len(lines) == 2 and all("moving it to" in line for line in lines), lines
  assert sorted(p.name for p in (workdir / "checkpoints_unreadable").iterdir()) == ["4", "40"]
  assert steps_on_disk(workdir)[-1] == 6
  assert json.loads((workdir / "eval" / "summary.json").read_text())["final"]["step"] == 6


def test_a_checkpoint_without_digests_restores_with_one_warning(run_copy, caplog):
  _, workdir = run_copy
  for step in (3, 4):
    shutil.rmtree(workdir / "checkpoints" / str(step) / "digest")
  checkpoints = Checkpoints(workdir, keep=5, selection_metric="recall@1", read_only=True)
  with caplog.at_level(logging.WARNING):
    states = [checkpoints.restore_as_saved(step) for step in (4, 3)]
  assert [r.getMessage() for r in caplog.records if "no array digests" in r.getMessage()] == [
      f"Checkpoint 4 in {workdir / 'checkpoints'} has no array digests (written by an older "
      "version); its arrays are restored unverified."]
  assert states[0]["trainable"]["model"]["backbone"]["conv1"]["kernel"].ndim == 4


def test_a_new_selection_metric_on_resume_ranks_the_older_checkpoints_last(run_copy):
  config, workdir = run_copy
  resumed = run(config, workdir, "--config.steps=6", "--config.eval.ks=(1,2,3)",
                "--config.eval.selection_metric=recall@3")
  assert resumed.returncode == 0, resumed.stderr
  (line,) = own_lines(resumed)
  assert "Checkpoint(s) [3, 4] were evaluated without 'recall@3'" in line, line
  summary = json.loads((workdir / "eval" / "summary.json").read_text())
  assert summary["selection_metric"] == "recall@3"
  assert summary["step"] == 6 and "recall@3" in summary["val"]  # the only one ranked by it


def test_a_diverging_run_stops_naming_the_arrays_and_saves_only_finite_states(run_copy):
  config, workdir = run_copy
  diverged = run(config, workdir, "--config.steps=12", "--config.checkpoint.every_steps=1",
                 "--config.optim.learning_rate=1e6", "--config.optim.warmup_epochs=0")
  assert diverged.returncode != 0
  message = diverged.stderr.strip().splitlines()[-1]
  assert re.search(r"Step \d+: not finite: .*That step was not applied, and the checkpoints "
                   r"in \S+ \(latest: \d+\) hold only finite values", message), message
  steps = steps_on_disk(workdir)
  assert steps[-1] > 4, steps  # it trained, and saved, before diverging
  checkpoints = Checkpoints(workdir, keep=5, selection_metric="recall@1", read_only=True)
  for step in steps:  # each verified against its digest, and finite
    state = checkpoints.restore_as_saved(step)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state)), step
