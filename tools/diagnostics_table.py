"""The Markdown table of a study's end-of-run diagnostics (eval/diagnostics.json of each run):
proxy-data W2, test spread and margin, mean ± sample sd over seeds, one row per cell.

    python -m tools.diagnostics_table STUDY_DIR > docs/reproduction/<study>_diagnostics.md
"""

import json
import statistics
from pathlib import Path

from absl import flags

from pfml_jax.command_line import fail, parse_tool_flags


def _mean_sd(values: list[float]) -> str:
  if not values:
    return "—"
  if len(values) == 1:
    return f"{values[0]:.3f}"
  return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(study: Path) -> str:
  rows: dict[str, dict[str, list[float]]] = {}
  for path in sorted(study.glob("*/seed_*/eval/diagnostics.json")):
    report = json.loads(path.read_text())
    row = rows.setdefault(path.parents[2].name, {"w2": [], "spread": [], "margin": [],
                                                 "positive": []})
    if report["proxy_data_w2"]:
      row["w2"].append(report["proxy_data_w2"]["mean"])
    row["spread"].append(report["test"]["spread"])
    row["margin"].append(report["test"]["margin"])
    row["positive"].append(report["test"]["margin_positive"])
  lines = ["| cell | n | proxy-data W2 (train, mean over classes) | test spread | test margin | "
           "test points with margin > 0 |", "|---|---|---|---|---|---|"]
  lines += [f"| {cell} | {len(row['spread'])} | {_mean_sd(row['w2'])} | "
            f"{_mean_sd(row['spread'])} | {_mean_sd(row['margin'])} | "
            f"{_mean_sd(row['positive'])} |" for cell, row in rows.items()]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  folders = parse_tool_flags(flags.FlagValues(), argv, __doc__)
  if len(folders) != 1:
    fail("give one argument, the study's folder.")
  print(table(Path(folders[0])))


if __name__ == "__main__":
  main()
