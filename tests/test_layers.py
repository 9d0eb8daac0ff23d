"""The package's layers (pyproject.toml [tool.importlinter]): no module imports a layer above
its own, checked by import-linter on the real tree and on a copy with one upward import."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
  """``lint-imports`` on the package and contract under ``root``."""
  command = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
             "sys.exit(lint_imports())"]
  return subprocess.run(command, cwd=root, env={"PYTHONPATH": str(root), "PATH": ""},
                        capture_output=True, text=True, timeout=300)


def test_no_module_imports_a_layer_above_its_own():
  result = lint_imports(REPO)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
  shutil.copytree(REPO / "pfml_jax", tmp_path / "pfml_jax",
                  ignore=shutil.ignore_patterns("__pycache__", "demo_assets"))
  shutil.copy(REPO / "pyproject.toml", tmp_path)
  metrics = tmp_path / "pfml_jax" / "evaluation" / "rank_metrics.py"
  metrics.write_text(metrics.read_text() + "\nfrom pfml_jax.training import trainer\n")
  result = lint_imports(tmp_path)
  assert result.returncode == 1, result.stdout
  assert "pfml_jax.evaluation.rank_metrics -> pfml_jax.training.trainer" in result.stdout


def test_tests_share_helpers_through_helper_modules_not_other_tests():
  """A test module imports shared code from tests/<helper>.py or a conftest fixture, never from
  another test module (whose tests pytest would then collect twice)."""
  offenders = [f"{path.relative_to(REPO)}: {line.strip()}"
               for path in (REPO / "tests").rglob("*.py")
               for line in path.read_text().splitlines()
               if line.lstrip().startswith(("from tests.", "import tests."))
               and ".test_" in line.split(" import ")[0]]
  assert not offenders, offenders
