"""A tiny real run for the run pictures: 12 colour classes, a tiny ViT, 6 steps (~10 s)."""

import pytest

from pfml_jax.training import trainer
from pfml_jax.viz import run_plots
from tests.colour_images import write_colour_classes
from tests.tiny_run import tiny_config



@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """The workdir of a finished 6-step PFML run (checkpoints, metrics.jsonl, eval/) and its
  pictures in plots/ (drawn as ``python -m pfml_jax.main`` draws them at the end: the best
  checkpoint; tests/training/test_checkpoint_cli_faults.py checks that main does)."""
  root = write_colour_classes(tmp_path_factory.mktemp("images"))
  workdir = tmp_path_factory.mktemp("run")
  trainer.train_and_evaluate(tiny_config(root), str(workdir))
  run_plots.write_run_plots(str(workdir), "best")
  return workdir
