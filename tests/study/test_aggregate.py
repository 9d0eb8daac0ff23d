"""Aggregation details the real study in test_run_and_aggregate.py does not reach: the
validated protocol's summary layout, one-run cells, and partial runs."""

import json

import numpy as np

from pfml_jax.study.aggregate import aggregate, cell_labels, describe, run_results
from pfml_jax.study.grid import Cell, is_floor, sweep_study, with_floor
from pfml_jax.study.tables import markdown


def validated_summary(selected: float, final: float, val: float = 0.5) -> dict:
  """The layout ``trainer._final_evaluation`` writes under eval.protocol=validated."""
  metrics = lambda r1: {"recall@1": r1, "recall@2": min(1.0, r1 + 0.1), "num_queries": 30}
  return {"protocol": "validated", "step": 4, "val": metrics(val),
          "test": metrics(selected), "selection_metric": "recall@1",
          "final": {"step": 6, "test": metrics(final)}}


def test_validated_runs_report_final_and_selected(tmp_path):
  study = sweep_study("v", ["configs/demo.py"], [("loss.pfml.alpha", [2, 3])], seeds=[0, 1, 2])
  values = {(2, 0): (0.61, 0.58), (2, 1): (0.65, 0.66), (2, 2): (0.6, 0.57), (3, 0): (0.7, 0.69)}
  val = {(2, 0): 0.8, (2, 1): 0.75, (2, 2): 0.9, (3, 0): 0.85}
  for (alpha, seed), (selected, final) in values.items():
    path = tmp_path / f"demo-alpha_{alpha}" / f"seed_{seed}" / "eval" / "summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(validated_summary(selected, final, val[(alpha, seed)])))
  (tmp_path / "demo-alpha_3" / "seed_1" / "checkpoints" / "2").mkdir(parents=True)
  result = aggregate(study, tmp_path)
  first, second = result["cells"]
  selected = 100 * np.array([values[(2, s)][0] for s in range(3)])
  final = 100 * np.array([values[(2, s)][1] for s in range(3)])
  np.testing.assert_allclose(first["best"]["recall@1"]["mean"], selected.mean(), rtol=1e-12)
  np.testing.assert_allclose(first["final"]["recall@1"]["sd"], final.std(ddof=1), rtol=1e-12)
  np.testing.assert_allclose(first["validation"]["recall@1"]["mean"],
                             100 * np.mean([val[(2, s)] for s in range(3)]), rtol=1e-12)
  assert first["protocol"] == "validated" and "num_queries" not in first["final"]
  assert second["runs"] == {"seed_0": "finished", "seed_1": "partial", "seed_2": "missing"}
  assert second["final"]["recall@1"] == {"mean": 69.0, "sd": None, "n": 1, "values": [69.0]}
  text = markdown(result)
  assert "| 69.0 (n=1/3) |" in text and "validated protocol: checkpoint chosen on the " in text
  validation = text.split("## Validation classes")[1]
  assert "| 85.0 (n=1/3) |" in validation and "| 69.0 (n=1/3) |" not in validation
  assert "`demo-alpha_3/seed_1`: partial" in text


def test_describe_matches_numpy():
  values = [81.2, 79.9, 80.4, 82.0, 80.1]
  stat = describe(values)
  np.testing.assert_allclose(stat["mean"], np.mean(values), rtol=1e-14)
  np.testing.assert_allclose(stat["sd"], np.std(values, ddof=1), rtol=1e-14)
  assert stat["n"] == 5 and describe([])["mean"] is None


def test_paper_protocol_uses_best_on_test():
  summary = {"protocol": "paper", "test": {"recall@1": 0.5},
             "best_on_test": {"step": 3, "test": {"recall@1": 0.75}, "note": "optimistic"}}
  assert run_results(summary) == ("paper", {"final": {"recall@1": 50.0},
                                            "best": {"recall@1": 75.0}})
  assert "## Validation classes" not in markdown(
      {"study": "p", "description": "", "seeds": [0], "notes": [], "cells": []})


def test_a_cell_named_by_its_method_value_shows_that_method():
  pa = Cell("configs/demo.py", (("loss.name", "proxy_anchor"),), (("method", "proxy_anchor"),))
  assert cell_labels(pa)["method"] == "Proxy Anchor"
  assert cell_labels(Cell("configs/demo.py"))["method"] == "PFML"
  assert cell_labels(Cell("configs/small/scratch.py:triplet"))["method"] == "Triplet"


def test_floor_row_and_cells_below_it_are_marked(tmp_path):
  """A step-0 cell leads its group; a mean below it is marked failed training, one above is
  not, in each table by its own result."""
  study = with_floor(sweep_study("f", ["configs/demo.py"], [("loss.pfml.alpha", [2, 3])],
                                 seeds=[0, 1]))
  floor, low, high = study.cells
  assert is_floor(floor) and dict(floor.overrides)["steps"] == 1
  assert with_floor(study) == study  # adding the floor again changes nothing
  selected = {floor.name: (0.30, 0.34), low.name: (0.20, 0.25), high.name: (0.50, 0.60)}
  for cell, values in selected.items():
    for seed, value in enumerate(values):
      path = tmp_path / cell / f"seed_{seed}" / "eval" / "summary.json"
      path.parent.mkdir(parents=True)
      path.write_text(json.dumps(validated_summary(value, final=0.32)))
  result = aggregate(study, tmp_path)
  assert [c["method"] for c in result["cells"]][0] == "Step 0 (floor)"
  text = markdown(result)
  best = text.split("## Best over training")[1].split("##")[0]
  rows = {line.split("|")[3].strip(): line for line in best.splitlines() if "| demo R@1" not in
          line and line.startswith("| ") and "---" not in line}
  assert "failed training" in rows["2"] and "failed training" not in rows["3"]
  assert "failed training" not in rows[""]  # the floor row itself
  final = text.split("## Final (last step)")[1].split("##")[0]
  assert "failed training" not in final  # every final mean equals the floor's there
  assert "The step-0 row is the untrained model" in text
