"""A run's data and weights folders follow its resolved config, not its config file's name."""

import shutil
from pathlib import Path

import pytest

from pfml_jax.study.commands import Site, run_arguments
from pfml_jax.study.grid import Cell, Run
from pfml_jax.user_errors import UserInputError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
  monkeypatch.chdir(REPO)


def flag(arguments: list[str], field: str) -> str:
  (value,) = [a.partition("=")[2] for a in arguments if a.startswith(f"--config.{field}=")]
  return value


def test_a_renamed_paper_config_keeps_its_dataset_and_weights(tmp_path):
  renamed = tmp_path / "my_experiment.py"
  shutil.copy(REPO / "configs" / "cars_vit.py", renamed)
  arguments = run_arguments(Run(Cell(f"{renamed}:proxy_anchor"), 0), "w", Site("/d", "/m"))
  assert flag(arguments, "data.root") == "/d/cars196"
  assert flag(arguments, "model.pretrained") == "/m/vit_s16.safetensors"


def test_an_override_of_the_dataset_moves_the_data_folder():
  cell = Cell("configs/cub_resnet50.py", overrides=(("data.name", "sop"),))
  assert flag(run_arguments(Run(cell, 0), "w", Site("/d")), "data.root") == (
      "/d/Stanford_Online_Products")
  demo = Run(Cell("configs/demo.py"), 0)
  assert flag(run_arguments(demo, "w", Site("/d")), "data.root") == "/d"  # its root itself
  with pytest.raises(UserInputError, match="resnet50_tiny"):
    run_arguments(demo, "w", Site("", "/m"))
