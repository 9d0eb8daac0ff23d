"""``python -m pfml_jax.main --dry_run``: the resolved config with sources, the dataset's
counts and the run length, printed without compiling, training or writing anything."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.colour_images import NUM_CLASSES, PER_CLASS, write_colour_classes

REPO = Path(__file__).resolve().parents[2]


def run_main(*args: str, workdir: Path) -> subprocess.CompletedProcess:
  """``python -m pfml_jax.main`` as a user runs it: one CPU device, from the repository."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), XLA_FLAGS="")
  return subprocess.run([sys.executable, "-m", "pfml_jax.main", f"--workdir={workdir}", *args],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
  """The ``error:`` lines of a run that failed on its input (status 2, no traceback)."""
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
  return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def run_length(stdout: str) -> tuple[int, int, int]:
  """(batch size, steps per epoch, total steps) as the report states them."""
  batch = int(re.search(r"batch size (\d+)", stdout).group(1))
  per_epoch, total = map(int, re.search(r"(\d+) steps per epoch, (\d+) steps in all",
                                        stdout).groups())
  return batch, per_epoch, total


def counts(stdout: str, split: str) -> tuple[int, int]:
  images, classes = re.search(rf"  {split}: (\d+) images, (\d+) classes", stdout).groups()
  return int(images), int(classes)


def test_demo_dry_run_shows_sources_counts_and_length_and_writes_nothing(tmp_path):
  workdir = tmp_path / "run"
  result = run_main("--config=configs/demo.py", "--dry_run", "--config.epochs=3",
                    workdir=workdir)
  assert result.returncode == 0, result.stderr
  out = result.stdout
  assert "  epochs = 3  [flag]" in out
  assert "  optim.learning_rate = 0.0052  [validation]" in out  # [validation: fair_scratch]
  assert "  model.embedding_dim = 64  [ours]" in out  # set by small_experiments.shared_setup
  assert "  data.root = ''  [pfml_jax/default_config.py]" in out  # set there, no tag
  assert "  data.split_seed = 0  [ours]" in out  # default_config.py: "[our choice]"
  train_images, _ = counts(out, "train")
  batch, per_epoch, total = run_length(out)
  assert batch == 32 * 4
  assert per_epoch == math.ceil(train_images / batch) and total == 3 * per_epoch
  assert not workdir.exists()


def test_image_folder_dry_run_counts_the_folder(tmp_path):
  (tmp_path / "images").mkdir()
  root = write_colour_classes(tmp_path / "images")
  result = run_main("--config=configs/demo.py", "--dry_run", "--config.data.name=image_folder",
                    f"--config.data.root={root}", "--config.eval.protocol=paper",
                    "--config.data.classes_per_batch=3", "--config.data.images_per_class=2",
                    "--config.steps=7", workdir=tmp_path / "run")
  assert result.returncode == 0, result.stderr
  out = result.stdout
  train, test = counts(out, "train"), counts(out, "test")
  # The folder rule: the first half of the classes (rounded up) train, the rest test.
  assert train == (PER_CLASS * math.ceil(NUM_CLASSES / 2), math.ceil(NUM_CLASSES / 2))
  assert test == (PER_CLASS * (NUM_CLASSES // 2), NUM_CLASSES // 2)
  assert "  val: none" in out
  assert run_length(out) == (6, math.ceil(train[0] / 6), 7)
  assert f"  data.root = '{root}'  [flag]" in out


def test_dry_run_of_a_missing_dataset_fails_as_training_does(tmp_path):
  missing = f"--config.data.root={tmp_path / 'no_such_cub'}"
  dry = run_main("--config=configs/cub_resnet50.py", missing, "--dry_run",
                 workdir=tmp_path / "dry")
  training = run_main("--config=configs/cub_resnet50.py", missing, workdir=tmp_path / "run")
  (line,) = error_lines(dry)
  assert error_lines(training) == [line] and "no_such_cub" in line
  assert not (tmp_path / "dry").exists()


def test_dry_run_validates_the_config(tmp_path):
  result = run_main("--config=configs/demo.py", "--dry_run", "--config.optim.clip=max",
                    workdir=tmp_path / "run")
  (error,) = error_lines(result)
  assert "optim.clip" in error and "'max'" in error
