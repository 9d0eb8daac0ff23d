"""The command line: input errors print one ``error:`` line and exit with status 2.

Each case runs ``python -m pfml_jax.main`` as a user would, and fails before any training.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_main(*args: str, workdir: Path) -> subprocess.CompletedProcess:
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
  env.pop("XLA_FLAGS", None)  # one CPU device, as a user's run
  return subprocess.run([sys.executable, "-m", "pfml_jax.main", f"--workdir={workdir}", *args],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr, result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, result.stderr
  return errors


def test_mistyped_config_field_suggests_the_closest_names(tmp_path):
  result = run_main("--config=configs/demo.py", "--config.optim.lr=1", workdir=tmp_path)
  (error,) = error_lines(result)
  assert result.stderr.strip().splitlines()[-1] == error
  assert "'optim.lr'" in error and "optim.learning_rate" in error


def test_missing_dataset_root_names_the_path(tmp_path):
  missing = tmp_path / "no_such_cub"
  result = run_main("--config=configs/cub_resnet50.py", f"--config.data.root={missing}",
                    workdir=tmp_path / "run")
  (error,) = error_lines(result)
  assert str(missing) in error


def test_bad_loss_hyperparameter(tmp_path):
  result = run_main("--config=configs/demo.py", "--config.loss.pfml.alpha=-1",
                    workdir=tmp_path)
  (error,) = error_lines(result)
  assert "alpha" in error and "-1" in error
  # INFO logs (orbax's among them) go to the workdir's log file, not to the terminal.
  assert not re.search(r"^I\d{4} ", result.stderr, re.MULTILINE), result.stderr
  assert "process 0 of 1" in (tmp_path / "logs" / "main.process0.log").read_text()


def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  result = run_main("--config=configs/demo.py", workdir=blocker / "run")
  (error,) = error_lines(result)
  assert f"--workdir={blocker / 'run'}" in error


def test_unknown_recipe_lists_the_recipes(tmp_path):
  result = run_main("--config=configs/cub_resnet50.py:nope", workdir=tmp_path)
  (error,) = error_lines(result)
  assert "'nope'" in error and "proxy_anchor" in error


def test_missing_config_file(tmp_path):
  result = run_main("--config=configs/no_such_config.py", workdir=tmp_path)
  (error,) = error_lines(result)
  assert "--config" in error
  assert "configs/no_such_config.py" in result.stderr


@pytest.mark.parametrize("args", [
    ("--config=configs/demo.py", "--config.loss.pfml.alpha=-1"),
    ("--config=configs/demo.py", "--config.optim.lr=1"),
])
def test_verbose_shows_the_traceback(tmp_path, args):
  result = run_main(*args, "--verbose", workdir=tmp_path)
  assert result.returncode != 0
  assert "Traceback" in result.stderr
  assert not any(line.startswith("error:") for line in result.stderr.splitlines())


def test_internal_error_keeps_its_traceback(tmp_path):
  """A config file that crashes (a bug, no input error) is not reduced to one line."""
  config_file = tmp_path / "crashing_config.py"
  config_file.write_text("def get_config():\n  raise TypeError('a bug in get_config')\n")
  result = run_main(f"--config={config_file}", workdir=tmp_path / "run")
  assert result.returncode not in (0, 2)
  assert "Traceback" in result.stderr and "a bug in get_config" in result.stderr
  assert not any(line.startswith("error:") for line in result.stderr.splitlines())


def test_the_last_line_names_the_metrics_the_bar_and_the_report():
  from pfml_jax.main import outcome_line  # absl flags: defined once, on import
  report = {"protocol": "validated", "step": 660,
            "test": {"recall@1": 0.7754, "recall@2": 0.877, "map@r": 0.28, "nmi": 0.6}}
  line = outcome_line(report, "/tmp/w", plots=True, pixel_bar=0.46633)
  assert line == ("Test recall@1 0.775, recall@2 0.877, map@r 0.280 (raw pixels: recall@1 "
                  "0.466) at step 660 (chosen on validation classes). Report: "
                  "/tmp/w/eval/summary.json; pictures: /tmp/w/plots/")
  paper = outcome_line(dict(report, protocol="paper"), "/tmp/w", plots=False)
  assert "(raw pixels" not in paper and "pictures" not in paper
  assert "the last step; the best on test, optimistic, is in the report" in paper
