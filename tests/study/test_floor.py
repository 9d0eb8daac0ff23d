"""The step-0 floor through the command line: `study run --floor` adds a cell whose run ends
with exactly the initial embedding model (compared with a fresh set-up's initialisation),
while the trained cell moves away from it; the tables lead with the floor row."""

import json

import jax
import numpy as np
import pytest

from pfml_jax.evaluation.trained_model import load_trained_model
from pfml_jax.training.setup import build, fresh_state
from tests.study.tiny_study import study_cli, write_tiny_setup

FLAGS = ("--config.eval.protocol=validated", "--config.data.val_classes=2",
         "--config.eval.diagnostics=false", "--config.plots=false")


@pytest.fixture(scope="module")
def floor_study(tmp_path_factory):
  base = tmp_path_factory.mktemp("floor")
  config = write_tiny_setup(base)
  workdir = base / "runs"
  ran = study_cli("run", f"--config={config}", "--sweep=optim.learning_rate=0.001", "--floor",
                  f"--workdir={workdir}", *FLAGS)
  summary = study_cli("aggregate", f"--workdir={workdir}")
  return dict(workdir=workdir, ran=ran, summary=summary)


def initial_and_final(run_dir):
  """The run's embedding-model parameters as a fresh set-up initialises them, and at its end."""
  trained = load_trained_model(run_dir, "latest")
  initial = fresh_state(build(trained.config)).trainable["model"]
  return jax.device_get(initial), trained.variables["params"]


def test_the_floor_run_ends_with_the_initial_model(floor_study):
  ran, workdir = floor_study["ran"], floor_study["workdir"]
  assert ran.returncode == 0, ran.stdout + ran.stderr
  assert "2 finished" in ran.stdout
  initial, final = initial_and_final(workdir / "tiny-method_floor" / "seed_0")
  equal = jax.tree.map(np.array_equal, initial, final)
  assert all(jax.tree.leaves(equal))
  initial, final = initial_and_final(workdir / "tiny-learning_rate_0.001" / "seed_0")
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, initial, final)))
  info = json.loads((workdir / "tiny-method_floor" / "seed_0" / "run_info.json").read_text())
  assert info["config"]["steps"] == 1 and info["config"]["optim"]["head_lr_mult"] == 0


def test_the_tables_lead_with_the_floor_row(floor_study):
  summary = floor_study["summary"]
  assert summary.returncode == 0, summary.stderr
  table = (floor_study["workdir"] / "aggregate" / "tiny_sweep.md").read_text()
  best = table.split("## Best over training")[1]
  first_row = [line for line in best.splitlines() if line.startswith("| ")][1]  # after the head
  assert "| Step 0 (floor) |" in first_row
  assert "The step-0 row is the untrained model" in table
