"""tools/effects_table.py on a study folder of written run summaries: the paired differences,
their 95 % intervals and verdicts, held against an independent float64 computation."""

import json

import numpy as np
import pytest

from pfml_jax.study.commands import Site
from pfml_jax.study.grid import FLOOR, FLOOR_OVERRIDES, Cell, Study
from pfml_jax.study.manifest import write_manifest
from tools import effects_table, noise_curve, strongest_losses

SEEDS = (0, 1, 2)
T_975_DF2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (tables)


def write_study(folder, recall, validation=None, methods=("pfml", "triplet"),
                noises=(0.0, 0.2)) -> None:
  """A finished study whose run (method, noise, seed) has test Recall@1 recall[...] and
  validation Recall@1 validation[...] (default: the same)."""
  validation = validation or recall
  cells = [Cell("configs/small/shared_scratch.py", FLOOR_OVERRIDES, (("method", FLOOR),))]
  cells += [Cell("configs/small/shared_scratch.py", (("loss.name", m), ("data.label_noise", n)),
                 (("method", m), ("label_noise", n)))
            for m in methods for n in noises]
  study = Study("effects", tuple(cells), SEEDS)
  write_manifest(folder, study, Site(), {})
  for run in study.runs():
    labels = dict(run.cell.values)
    key = (labels["method"], labels.get("label_noise", 0.0), run.seed)
    metrics = {"recall@1": recall[key] / 100, "num_queries": 10}
    summary = {"protocol": "validated", "test": metrics,
               "val": {"recall@1": validation[key] / 100}, "final": {"test": metrics}}
    (folder / run.folder / "eval").mkdir(parents=True)
    (folder / run.folder / "eval" / "summary.json").write_text(json.dumps(summary))
    w2 = None if labels["method"] == "triplet" else {"mean": recall[key] / 100}  # no proxies
    (folder / run.folder / "eval" / "diagnostics.json").write_text(
        json.dumps({"proxy_data_w2": w2}))


def interval(differences):
  d = np.asarray(differences, np.float64)
  half = T_975_DF2 * d.std(ddof=1) / np.sqrt(len(d))
  return d.mean(), d.mean() - half, d.mean() + half


def row(text, name):
  (line,) = [l for l in text.splitlines() if l.startswith(f"| {name} |")]
  cells = [c.strip() for c in line.strip("|").split("|")]
  low, high = (float(v) for v in cells[3].strip("[]").split(","))
  return int(cells[1]), float(cells[2]), low, high, cells[5]


def test_paired_differences_and_verdicts(tmp_path, capsys):
  rng = np.random.default_rng(0)
  recall = {(FLOOR, 0.0, s): 30 + rng.normal() for s in SEEDS}
  for s in SEEDS:
    recall[("pfml", 0.0, s)] = 70 + rng.normal()
    recall[("triplet", 0.0, s)] = recall[("pfml", 0.0, s)] + rng.normal() * 3
    recall[("pfml", 0.2, s)] = recall[("pfml", 0.0, s)] - 10 + rng.normal()
    recall[("triplet", 0.2, s)] = recall[("triplet", 0.0, s)] - 2 + rng.normal()
  write_study(tmp_path, recall)
  effects_table.main([str(tmp_path)])
  text = capsys.readouterr().out
  contrasts = {
      "PFML, noise 0": [recall[("pfml", 0.0, s)] - recall[(FLOOR, 0.0, s)] for s in SEEDS],
      "vs Triplet, noise 0": [recall[("pfml", 0.0, s)] - recall[("triplet", 0.0, s)]
                              for s in SEEDS],
      "Triplet drop at noise 0.2": [recall[("triplet", 0.0, s)] - recall[("triplet", 0.2, s)]
                                    for s in SEEDS],
  }
  drops = text.split("Drop under noise")[1]
  contrasts["drops: vs Triplet, noise 0.2"] = [
      (recall[("pfml", 0.0, s)] - recall[("pfml", 0.2, s)]) -
      (recall[("triplet", 0.0, s)] - recall[("triplet", 0.2, s)]) for s in SEEDS]
  for name, differences in contrasts.items():
    n, mean, low, high, said = row(drops, name[7:]) if name.startswith("drops") else row(text,
                                                                                        name)
    expected = interval(differences)
    assert n == 3 and (mean, low, high) == pytest.approx(expected, abs=0.051)
    assert said == ("> 0" if expected[1] > 0 else "< 0" if expected[2] < 0 else "inconclusive")
  assert row(text, "PFML, noise 0")[4] == "> 0"  # 40 points over the floor, sd ~1.4


def test_equal_differences_over_every_seed_are_inconclusive(tmp_path, capsys):
  """A coarse metric can give the same difference at every seed: sd 0 leaves the t-test
  undefined (also where rounding leaves the differences apart by 1e-14), so no interval, no p
  and no verdict of a difference."""
  recall = {(m, n, s): base + 17 * s / 3 for m, base in ((FLOOR, 30.0), ("pfml", 90.1),
                                                           ("triplet", 89.9))
            for n in (0.0, 0.2) for s in SEEDS}
  write_study(tmp_path, recall)
  effects_table.main([str(tmp_path)])
  (line,) = [l for l in capsys.readouterr().out.splitlines()
             if l.startswith("| vs Triplet, noise 0 |")]
  assert [c.strip() for c in line.strip("|").split("|")] == [
      "vs Triplet, noise 0", "3", "+0.2", "—", "—",
      "inconclusive (equal differences, no t-interval)"]


def test_a_diagnostic_is_compared_in_its_own_units(tmp_path, capsys):
  """W2 (written as recall / 100 here): three decimals; a loss without proxies has no row."""
  rng = np.random.default_rng(2)
  recall = {(m, n, s): rng.uniform(50, 140) for m in (FLOOR, "pfml", "triplet")
            for n in (0.0, 0.2) for s in SEEDS}
  write_study(tmp_path, recall)
  effects_table.main([str(tmp_path), "--result=diagnostics", "--metric=proxy_data_w2"])
  text = capsys.readouterr().out
  n, mean, low, high, _ = row(text, "PFML, noise 0")
  expected = interval([(recall[("pfml", 0.0, s)] - recall[(FLOOR, 0.0, s)]) / 100
                       for s in SEEDS])
  assert n == 3 and (mean, low, high) == pytest.approx(expected, abs=0.00051)
  assert "| Triplet, noise 0 |" not in text


def test_cells_of_one_loss_are_told_apart_and_one_is_the_reference(tmp_path, capsys):
  """Two PFML fields and Proxy Anchor, no floor: each against PFML (field=new)."""
  cells = (Cell("configs/small/demo_recipe.py", (), (("method", "pfml"), ("field", "new"))),
           Cell("configs/small/demo_recipe.py", (("loss.pfml.alpha", 2),),
                (("method", "pfml"), ("field", "old"))),
           Cell("configs/small/demo_recipe.py", (("loss.name", "proxy_anchor"),),
                (("method", "proxy_anchor"),)))
  study = Study("variants", cells, SEEDS)
  write_manifest(tmp_path, study, Site(), {})
  recall = {}
  for run, value in zip(study.runs(), np.random.default_rng(3).uniform(40, 90, 9)):
    recall[run.folder] = value
    metrics = {"recall@1": value / 100}
    (tmp_path / run.folder / "eval").mkdir(parents=True)
    (tmp_path / run.folder / "eval" / "summary.json").write_text(json.dumps(
        {"protocol": "validated", "test": metrics, "val": metrics, "final": {"test": metrics}}))
  effects_table.main([str(tmp_path), "--reference=pfml:field=new"])
  text = capsys.readouterr().out
  assert "step-0 floor" not in text and "PFML (field=new) minus each other loss" in text
  n, mean, low, high, _ = row(text, "vs PFML (field=old), noise 0")
  new, old = ([recall[f"{c.name}/seed_{s}"] for s in SEEDS] for c in cells[:2])
  assert n == 3 and (mean, low, high) == pytest.approx(
      interval(np.subtract(new, old)), abs=0.051)
  assert row(text, "vs Proxy Anchor, noise 0")[0] == 3
  with pytest.raises(SystemExit):
    effects_table.main([str(tmp_path)])  # no plain "pfml" cell here: one error line


def test_the_strongest_losses_are_ranked_on_validation(tmp_path, capsys):
  """On test Proxy Anchor leads, on validation HIST and then Triplet: the tool says the latter."""
  methods = ("pfml", "triplet", "hist", "proxy_anchor")
  test = {(m, n, s): v for m, v in ((FLOOR, 30.0), ("pfml", 90.0), ("triplet", 60.0),
                                    ("hist", 50.0), ("proxy_anchor", 80.0))
          for n in (0.0, 0.2) for s in SEEDS}
  validation = {(m, n, s): {"hist": 70.0, "triplet": 65.0, "proxy_anchor": 40.0}.get(m, 99.0)
                for m, n, s in test}
  write_study(tmp_path, test, validation, methods)
  strongest_losses.main([str(tmp_path)])
  assert capsys.readouterr().out.strip() == "hist,triplet"


def test_the_noise_curve_merges_studies_into_one_table(tmp_path, capsys):
  """Noise 0 and 0.2 from one study, 0.1 and 0.4 from another: one row per loss."""
  rng = np.random.default_rng(1)
  recall = {(m, n, s): rng.uniform(20, 90) for m in ("pfml", "triplet")
            for n in (0.0, 0.1, 0.2, 0.4) for s in SEEDS}
  recall.update({(FLOOR, 0.0, s): 30.0 for s in SEEDS})
  write_study(tmp_path / "a", recall)
  write_study(tmp_path / "b", recall, noises=(0.1, 0.4))
  out = tmp_path / "curve.png"
  noise_curve.main([str(tmp_path / "a"), str(tmp_path / "b"), "--losses=pfml,triplet",
                    f"--out={out}"])
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == "| loss | noise 0 | noise 0.1 | noise 0.2 | noise 0.4 |"
  pfml = [c.strip() for c in lines[2].strip("|").split("|")]
  for column, noise in enumerate((0.0, 0.1, 0.2, 0.4), start=1):
    runs = [recall[("pfml", noise, s)] for s in SEEDS]
    assert pfml[column] == f"{np.mean(runs):.1f} ± {np.std(runs, ddof=1):.1f} (n = 3)"
  assert lines[-1].startswith("| Step 0 (floor) | 30.0 ± 0.0 (n = 3) |")
  assert out.stat().st_size > 10_000
