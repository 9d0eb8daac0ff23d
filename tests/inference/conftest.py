"""One tiny real training run (vit_tiny, 4 steps, checkpoints at steps 2 and 4) for every
inference test, and the folder of images it trained on."""

import pytest

from pfml_jax.training import trainer
from tests.colour_images import write_colour_classes
from tests.tiny_run import tiny_config


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
  """12 classes x 6 small JPEGs of different sizes, each class a colour with noise."""
  return write_colour_classes(tmp_path_factory.mktemp("images"), varied_sizes=True)


@pytest.fixture(scope="session")
def run_dir(image_folder, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  trainer.train_and_evaluate(tiny_config(image_folder, steps=4), str(workdir))
  return workdir


@pytest.fixture
def cli(capsys):
  """``python -m pfml_jax.inference ARGS`` in this process: (exit status, stdout, stderr)."""
  from pfml_jax.inference.__main__ import main  # pylint: disable=g-import-not-at-top

  def call(*argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
      main([str(a) for a in argv])
      code = 0
    except SystemExit as exit_:
      code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err

  return call


def error_lines(stderr: str) -> list[str]:
  """The lines of stderr that are not progress bars."""
  return [l for l in stderr.replace("\r", "\n").splitlines()
          if l.strip() and not l.startswith("embedding")]
