"""An aggregated study (``aggregate.aggregate``) as Markdown, CSV and JSON tables.

Markdown follows the paper's layout: one row per backbone / method / swept value, one column
group per dataset with its Recall@K, ours as ``mean ± sd (n)`` and the paper's number on the
row below where the paper reports one; a table for the final and one for the best result, and
under the validated protocol one of the validation classes' metrics (what to choose by).
"""

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

_RECALL = re.compile(r"recall@(\d+)$")
from pfml_jax.study.aggregate import RESULTS

_TITLES = {"final": "Final (last step)",
           "best": "Best over training",
           "validation": "Validation classes, at the checkpoint chosen on them (choose "
                         "hyperparameters by this table, never by the test tables)"}
FAILED = " failed training"
_BEST_NOTES = {"paper": "checkpoint chosen on test, as the field reports it: optimistic",
               "validated": "checkpoint chosen on the validation classes"}


def _ks(cells: list[dict[str, Any]]) -> list[int]:
  """The Recall@K of a column group: every K our runs or the paper report."""
  found = {int(m.group(1)) for cell in cells for name in (*RESULTS, "paper")
           for key in cell[name] for m in [_RECALL.match(key)] if m}
  return sorted(found)


def _ours(stat: dict[str, Any] | None, expected: int) -> str:
  if not stat or stat["n"] == 0:
    return f"— (0/{expected})"
  n = f"n={stat['n']}" if stat["n"] == expected else f"n={stat['n']}/{expected}"
  spread = f" ± {stat['sd']:.1f}" if stat["sd"] is not None else ""
  return f"{stat['mean']:.1f}{spread} ({n})"


def markdown(result: dict[str, Any]) -> str:
  """The study's Markdown report: both tables, then notes and the runs that are missing."""
  cells = result["cells"]
  groups = list(dict.fromkeys(cell["group"] for cell in cells))
  ks = {g: _ks([c for c in cells if c["group"] == g]) for g in groups}
  # A "method" value repeats the method column (the small studies name their cells by it).
  value_labels = list(dict.fromkeys(label for c in cells for label in c["values"]
                                    if label != "method"))
  rows = list(dict.fromkeys(_row_key(c, value_labels) for c in cells))
  head = ["backbone", "method", *value_labels] + [
      f"{g} R@{k}" if i == 0 else f"R@{k}" for g in groups for i, k in enumerate(ks[g])]
  protocols = sorted({p for c in cells for p in c["protocol"].split("/") if p})
  floors = {c["group"]: c for c in cells if c.get("floor")}
  lines = [f"# {result['description'] or result['study']}", "",
           f"Study `{result['study']}`, seeds {result['seeds']}; Recall@K in %, ours as mean ± "
           "sample sd (n runs), the paper's value on the row below.", ""]
  for name in RESULTS:
    if name == "validation" and not any(c["validation"] for c in cells):
      continue
    title = _TITLES[name]
    if name == "best" and protocols:
      title += " (" + "; ".join(f"{p} protocol: {_BEST_NOTES[p]}" for p in protocols) + ")"
    lines += [f"## {title}", "", "| " + " | ".join(head) + " |",
              "|" + "---|" * len(head)]
    for row in rows:
      by_group = {c["group"]: c for c in cells if _row_key(c, value_labels) == row}
      ours = [_ours(by_group[g][name].get(f"recall@{k}"), by_group[g]["n_expected"]) +
              (FAILED if _below_floor(by_group[g], floors.get(g), name, f"recall@{k}") else "")
              if g in by_group else "" for g in groups for k in ks[g]]
      lines.append("| " + " | ".join([*row, *ours]) + " |")
      paper = [_paper(by_group.get(g), k) for g in groups for k in ks[g]]
      if any(paper) and name != "validation":
        lines.append("| " + " | ".join(["", "paper", *[""] * len(value_labels), *paper]) + " |")
    lines.append("")
  absent = [f"- `{c['cell']}/{seed}`: {status}" for c in cells
            for seed, status in c["runs"].items() if status != "finished"]
  if floors:
    lines += [f"The step-0 row is the untrained model (a floor);{FAILED} marks a mean below "
              "it at that K and in that table: that training failed, it is not a result.", ""]
  if result["notes"]:
    lines += [*result["notes"], ""]
  if absent:
    lines += ["Runs without a summary (not in the statistics):", "", *absent, ""]
  return "\n".join(lines)


def _below_floor(cell: dict[str, Any], floor: dict[str, Any] | None, result: str,
                 metric: str) -> bool:
  """Whether ``cell``'s mean is below its group's step-0 floor (``result``, ``metric``)."""
  if floor is None or cell is floor:
    return False
  ours, lowest = cell[result].get(metric), floor[result].get(metric)
  return bool(ours and lowest and ours["n"] and lowest["n"] and ours["mean"] < lowest["mean"])


def _row_key(cell: dict[str, Any], value_labels: list[str]) -> tuple[str, ...]:
  return (cell["backbone"], cell["method"],
          *(str(cell["values"].get(label, "")) for label in value_labels))


def _paper(cell: dict[str, Any] | None, k: int) -> str:
  value = (cell or {}).get("paper", {}).get(f"recall@{k}")
  return "" if value is None else f"{value:.1f}"


def csv_text(result: dict[str, Any]) -> str:
  """One line per (cell, result, metric): mean, sd, n, expected n and the paper's value."""
  value_labels = list(dict.fromkeys(label for c in result["cells"] for label in c["values"]))
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(["study", "cell", "group", "backbone", "method", *value_labels, "protocol",
                   "result", "metric", "mean", "sd", "n", "n_expected", "paper"])
  for cell in result["cells"]:
    labels = [cell["values"].get(label, "") for label in value_labels]
    for name in RESULTS:
      if name == "validation" and not cell[name]:
        continue
      metrics = sorted(set(cell[name]) | (set(cell["paper"]) if name != "validation" else set()))
      for metric in metrics:
        stat = cell[name].get(metric, {"mean": None, "sd": None, "n": 0})
        writer.writerow([result["study"], cell["cell"], cell["group"], cell["backbone"],
                         cell["method"], *labels, cell["protocol"], name, metric,
                         _number(stat["mean"]), _number(stat["sd"]), stat["n"],
                         cell["n_expected"], _number(cell["paper"].get(metric))])
  return out.getvalue()


def _number(value: float | None) -> str:
  return "" if value is None else repr(float(value))


def write_tables(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
  """``<study>.md``, ``<study>.csv`` and ``<study>.json`` in ``out_dir``."""
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  texts = {"md": markdown(result), "csv": csv_text(result),
           "json": json.dumps(result, indent=2) + "\n"}
  paths = []
  for suffix, text in texts.items():
    path = out_dir / f"{result['study']}.{suffix}"
    path.write_text(text)
    paths.append(path)
  return paths
