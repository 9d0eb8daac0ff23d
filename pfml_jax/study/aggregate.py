"""Collects a study's finished runs into mean, sd and n per cell, in percent.

Each run's ``eval/summary.json`` gives up to three results: ``final`` (the last step's test
metrics), ``best`` (the best over training: under the paper protocol the checkpoint chosen on
test, optimistic, as the field reports it; under ``validated`` the checkpoint chosen on the
validation classes) and, under ``validated`` only, ``validation`` (that checkpoint's metrics on
the validation classes: what a study chooses hyperparameters by). A run without a summary is listed as missing, partial (checkpoints but no
summary) or failed (the runner's last status), never silently dropped: n counts the runs found
against the seeds asked for.
"""

import json
import statistics
from pathlib import Path
from typing import Any

from pfml_jax.study import manifest as manifest_lib
from pfml_jax.study.commands import paper_setting
from pfml_jax.study.grid import FLOOR, Cell, Study, is_floor
from pfml_jax.study.runner import SUMMARY, has_checkpoints
from pfml_jax.user_errors import UserInputError

RESULTS = ("final", "best", "validation")
_COUNTS = ("num_queries", "num_excluded_queries")  # counts, not metrics
DATASET_NAMES = {"cub": "CUB-200-2011", "cars": "Cars-196", "sop": "SOP"}
BACKBONE_NAMES = {"resnet50": "ResNet-50", "bninception": "BN-Inception", "vit": "ViT-S/16",
                  "dino": "DINO ViT-S/16"}
METHOD_NAMES = {"pfml": "PFML", "pfml_main_text": "PFML (main-text rates)",
                "proxy_anchor": "Proxy Anchor", "proxy_nca": "ProxyNCA",
                "multi_similarity": "Multi-Similarity", "triplet": "Triplet",
                "normalized_softmax": "Normalized Softmax", "hist": "HIST",
                FLOOR: "Step 0 (floor)"}


def run_results(summary: dict[str, Any]) -> tuple[str, dict[str, dict[str, float]]]:
  """``(protocol, {result: metrics})`` of one run's summary, in percent (module docstring)."""
  protocol = summary["protocol"]
  if protocol == "paper":
    results = {"final": summary["test"], "best": summary["best_on_test"]["test"]}
  else:
    results = {"final": summary["final"]["test"], "best": summary["test"],
               "validation": summary["val"]}
  return protocol, {name: {k: 100.0 * float(v) for k, v in metrics.items() if k not in _COUNTS}
                    for name, metrics in results.items()}


def describe(values: list[float]) -> dict[str, Any]:
  """Mean, sample standard deviation (None below two values) and n."""
  return {"mean": statistics.fmean(values) if values else None,
          "sd": statistics.stdev(values) if len(values) > 1 else None,
          "n": len(values), "values": values}


def cell_labels(cell: Cell) -> dict[str, Any]:
  """The names a table shows for a cell: its column group, backbone, method and values."""
  setting = paper_setting(cell.stem)
  method = dict(cell.values).get("method") or cell.recipe or "pfml"
  return {"group": DATASET_NAMES[setting[0]] if setting else cell.stem,
          "backbone": BACKBONE_NAMES[setting[1]] if setting else "",
          "method": METHOD_NAMES.get(method, method), "floor": is_floor(cell),
          "values": dict(cell.values)}


def aggregate(study: Study, workdir: str | Path) -> dict[str, Any]:
  """The study's statistics per cell; see the module docstring."""
  workdir = Path(workdir)
  if not workdir.is_dir():
    raise UserInputError(f"--workdir={workdir} does not exist: run the study first.")
  statuses = (manifest_lib.read_manifest(workdir) or {}).get("runs", {})
  cells = []
  for cell in study.cells:
    found, runs, protocols = {name: {} for name in RESULTS}, {}, set()
    for seed in study.seeds:
      folder = f"{cell.name}/seed_{seed}"
      path = workdir / folder / SUMMARY
      if not path.exists():
        runs[f"seed_{seed}"] = _absent(workdir / folder, statuses.get(folder, {}))
        continue
      try:
        protocol, results = run_results(json.loads(path.read_text()))
      except (json.JSONDecodeError, KeyError) as error:
        raise UserInputError(f"{path} is not a run summary ({error!r}); rerun that run "
                             "(remove the file to make the study rerun it).") from error
      protocols.add(protocol)
      runs[f"seed_{seed}"] = "finished"
      for name, metrics in results.items():
        found[name][seed] = metrics
    stats = {}
    for name in RESULTS:
      metrics = sorted({k for per_seed in found[name].values() for k in per_seed})
      stats[name] = {k: describe([found[name][s][k] for s in study.seeds
                                  if k in found[name].get(s, {})]) for k in metrics}
    cells.append({"cell": cell.name, "config": cell.config, **cell_labels(cell),
                  "protocol": "/".join(sorted(protocols)), "runs": runs,
                  "n_expected": len(study.seeds), **stats, "paper": dict(cell.paper)})
  return {"study": study.name, "description": study.description, "seeds": list(study.seeds),
          "sweep": study.sweep, "notes": list(study.notes), "unit": "percent", "cells": cells}


def _absent(run_dir: Path, record: dict[str, Any]) -> str:
  if record.get("status") == "failed":
    return "failed"
  return "partial" if has_checkpoints(run_dir) else "missing"
