"""A tiny real run for the run pictures: 12 colour classes, a tiny ViT, 6 steps (~10 s)."""

import pytest

from pfml_jax.training import trainer
from tests.colour_images import write_colour_classes
from tests.training.test_trainer import tiny_config



@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """The workdir of a finished 6-step PFML run (checkpoints, metrics.jsonl, eval/, and the
  plots/ the end of training draws)."""
  root = write_colour_classes(tmp_path_factory.mktemp("images"))
  workdir = tmp_path_factory.mktemp("run")
  trainer.train_and_evaluate(tiny_config(root, plots=True), str(workdir))
  return workdir
