"""A real tiny study through the command line: 2 cells x 2 seeds train, a failing cell is
reported while the others go on, a rerun skips finished runs and resumes a partial one, and
the aggregate equals an independent numpy computation over the runs' summaries."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.study.tiny_study import study_cli, write_tiny_setup

SEEDS = (0, 1)
GOOD = ("tiny-alpha_2", "tiny-alpha_4")
FAILING = "tiny-alpha_-1"  # alpha must be > 0: the run stops at config validation
PARTIAL = f"{GOOD[1]}/seed_1"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
  """Runs the study, makes one run partial, reruns it; returns what each step left."""
  base = tmp_path_factory.mktemp("study")
  config = write_tiny_setup(base)  # 12 classes: 6 train, 6 test
  workdir = base / "runs"
  spec = [f"--config={config}", "--sweep=loss.pfml.alpha=-1,2,4", "--seeds=0,1",
          f"--workdir={workdir}"]
  first = study_cli("run", *spec, "--parallel=2", "--config.eval.every_epochs=1")
  summaries = {f"{cell}/seed_{s}": workdir / cell / f"seed_{s}" / "eval" / "summary.json"
               for cell in GOOD for s in SEEDS}
  mtimes = {run: path.stat().st_mtime_ns for run, path in summaries.items() if path.exists()}
  # Make one run partial, as if killed after its step-1 checkpoint.
  partial = workdir / PARTIAL
  if summaries[PARTIAL].exists():
    summaries[PARTIAL].unlink()
    shutil.rmtree(partial / "checkpoints" / "2")
  second = study_cli("run", *spec, "--config.eval.every_epochs=1")
  third = study_cli("aggregate", f"--workdir={workdir}")  # the study from its manifest
  return dict(workdir=workdir, first=first, second=second, aggregate=third,
              summaries=summaries, mtimes=mtimes)


def test_runs_train_and_a_failure_does_not_stop_the_study(study):
  first = study["first"]
  assert first.returncode == 1, first.stdout + first.stderr  # one cell failed
  for seed in SEEDS:
    assert f"{FAILING}/seed_{seed}: failed" in first.stdout
    log = (study["workdir"] / FAILING / f"seed_{seed}" / "study_run.log").read_text()
    assert "error: config.loss.pfml: Loss 'pfml': alpha must be a finite number > 0" in log
  assert "4 finished, 0 skipped, 0 stopped, 2 failed" in first.stdout, first.stdout
  assert len(study["mtimes"]) == 4
  info = json.loads((study["workdir"] / GOOD[1] / "seed_1" / "run_info.json").read_text())
  assert info["config"]["loss"]["pfml"]["alpha"] == 4 and info["config"]["seed"] == 1


def test_rerun_skips_finished_runs_and_resumes_the_partial_one(study):
  second, workdir = study["second"], study["workdir"]
  assert "3 skipped" in second.stdout and "1 finished" in second.stdout, second.stdout
  assert f"{PARTIAL}: finished" in second.stdout
  for run, path in study["summaries"].items():
    if run != PARTIAL:
      assert path.stat().st_mtime_ns == study["mtimes"][run]  # not rerun
  assert study["summaries"][PARTIAL].exists()
  log = (workdir / PARTIAL / "logs" / "main.process0.log").read_text()
  assert "Resumed from step 1" in log
  manifest = json.loads((workdir / "study.json").read_text())
  assert manifest["runs"][PARTIAL]["resumed"] is True
  skipped = manifest["runs"][f"{GOOD[0]}/seed_0"]
  assert skipped["status"] == "skipped" and skipped["returncode"] == 0  # its first attempt
  assert manifest["runs"][f"{FAILING}/seed_0"]["status"] == "failed"
  assert manifest["study"]["name"] == "tiny_sweep"


def test_aggregate_equals_numpy_over_the_summaries(study):
  assert study["aggregate"].returncode == 0, study["aggregate"].stderr
  out = study["workdir"] / "aggregate"
  result = json.loads((out / "tiny_sweep.json").read_text())
  cells = {c["cell"]: c for c in result["cells"]}
  rows = list(csv.DictReader((out / "tiny_sweep.csv").open()))
  spread = []
  for cell in GOOD:
    summaries = [json.loads(study["summaries"][f"{cell}/seed_{s}"].read_text()) for s in SEEDS]
    for name, pick in (("final", lambda s: s["test"]),
                       ("best", lambda s: s["best_on_test"]["test"])):
      for metric in ("recall@1", "recall@2", "map@r"):
        values = 100 * np.array([pick(s)[metric] for s in summaries], dtype=np.float64)
        stat = cells[cell][name][metric]
        assert stat["n"] == 2
        np.testing.assert_allclose(stat["mean"], values.mean(), rtol=1e-12)
        np.testing.assert_allclose(stat["sd"], values.std(ddof=1), rtol=1e-12, atol=1e-12)
        (row,) = [r for r in rows if r["cell"] == cell and r["result"] == name
                  and r["metric"] == metric]
        np.testing.assert_allclose(float(row["mean"]), values.mean(), rtol=1e-12)
        spread.append(values.std(ddof=1))
  assert max(spread) > 0  # the seeds differ: the check compares real spreads
  failing = cells[FAILING]
  assert failing["runs"] == {"seed_0": "failed", "seed_1": "failed"}
  assert failing["final"] == {} and failing["n_expected"] == 2
  markdown = (out / "tiny_sweep.md").read_text()
  assert "— (0/2)" in markdown and f"`{FAILING}/seed_0`: failed" in markdown
  mean, sd = cells[GOOD[0]]["final"]["recall@1"]["mean"], cells[GOOD[0]]["final"]["recall@1"]["sd"]
  assert f"| {mean:.1f} ± {sd:.1f} (n=2) |" in markdown
  plot = out / "tiny_sweep_recall_at_1.png"
  assert plot.stat().st_size > 10_000
  with Image.open(plot) as image:
    assert image.size == (768, 504)
