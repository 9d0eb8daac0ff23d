"""``pip install``-ed pfml_jax works outside a checkout: the wheel holds every package and the
shipped configs, and the demo, a study's list / emit, inference and viz run from another
folder with only the wheel's pfml_jax importable."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """(the folder the wheel was installed into, the environment that imports it alone)."""
  base = tmp_path_factory.mktemp("installed")
  source = base / "source"  # a copy: building writes build/ and *.egg-info/ beside the sources
  for name in ("pfml_jax", "configs"):
    shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
  for name in ("pyproject.toml", "README.md", "LICENSE"):
    shutil.copy(REPO / name, source / name)
  subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                  "--no-build-isolation", str(source), "-w", str(base / "wheel")],
                 check=True, timeout=600, capture_output=True)
  (wheel,) = (base / "wheel").glob("pfml_jax-*.whl")
  target = base / "site"
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                  "--target", str(target), str(wheel)], check=True, timeout=600,
                 capture_output=True)
  # The dependencies from this interpreter's site-packages, whose .pth files (this checkout's
  # editable install among them) python -S does not run.
  dependencies = [p for p in sys.path if p.endswith("site-packages")]
  env = {"PATH": os.environ.get("PATH", ""), "HOME": str(base), "JAX_PLATFORMS": "cpu",
         "XDG_CACHE_HOME": str(base / "cache"),
         "PYTHONPATH": os.pathsep.join([str(target), *dependencies])}
  return wheel, target, env


def run(env, folder: Path, *args: str) -> subprocess.CompletedProcess:
  folder.mkdir(exist_ok=True)
  result = subprocess.run([sys.executable, "-S", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def test_the_wheel_holds_every_package_and_the_shipped_configs(installed):
  wheel, _, _ = installed
  names = set(zipfile.ZipFile(wheel).namelist())
  packages = {str(p.relative_to(REPO)) for p in (REPO / "pfml_jax").rglob("__init__.py")}
  assert packages <= names, sorted(packages - names)
  configs = {"pfml_jax/" + str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.py")}
  assert configs <= names, sorted(configs - names)
  assert "pfml_jax/data/demo_assets/glyphs64.npz" in names


@pytest.mark.slow  # ~90 s: a 2-step demo run, its pictures and an embedding, each a process
def test_demo_study_inference_and_viz_run_from_another_folder(installed, tmp_path):
  _, target, env = installed
  elsewhere = tmp_path / "elsewhere"
  where = run(env, elsewhere, "-c", "import pfml_jax; print(pfml_jax.__file__)").stdout
  assert Path(where.strip()).is_relative_to(target)

  listed = run(env, elsewhere, "-m", "pfml_jax.study", "list").stdout
  assert "demo_recipe" in listed
  emitted = run(env, elsewhere, "-m", "pfml_jax.study", "emit", "demo_recipe", "--seeds=0",
                "--emit=commands", "--workdir=studies/demo").stdout.splitlines()
  assert emitted and all("--config=configs/small/demo_recipe.py" in line for line in emitted)

  run(env, elsewhere, "-m", "pfml_jax.main", "--config=configs/demo.py", "--workdir=run",
      "--config.steps=2", "--config.plots=false", "--config.eval.diagnostics=false")
  summary = json.loads((elsewhere / "run" / "eval" / "summary.json").read_text())
  assert summary["step"] == 2 and 0 <= summary["test"]["recall@1"] <= 1

  Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(elsewhere / "glyph.png")
  run(env, elsewhere, "-m", "pfml_jax.inference", "embed", "--workdir=run", "--images=glyph.png",
      "--out=embedded")
  assert np.load(elsewhere / "embedded.npy").shape == (1, 64)
  drawn = run(env, elsewhere, "-m", "pfml_jax.viz", "plots", "run").stdout.split()
  assert [Path(p).name for p in drawn] == ["training_curves.png", "retrieval_grid.png",
                                           "embedding_map.png"]
