"""The Markdown table of a study's end-of-run diagnostics (eval/diagnostics.json of each run):
proxy-data W2, the share of training embeddings whose nearest proxy is their own class's
(against chance), the proxies' spread over their data's (near 0: a class's proxies collapsed),
test spread and margin; mean ± sample sd over seeds, one row per cell ("—": the loss has no
proxies, or one per class for the spread).

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


def _chance(values: list[float]) -> str:
  return f" ({statistics.mean(values):.3f})" if values else ""


def table(study: Path) -> str:
  rows: dict[str, dict[str, list[float]]] = {}
  for path in sorted(study.glob("*/seed_*/eval/diagnostics.json")):
    report = json.loads(path.read_text())
    row = rows.setdefault(path.parents[2].name, {key: [] for key in (
        "w2", "nearest", "chance", "ratio", "spread", "margin", "positive")})
    if report["proxy_data_w2"]:
      row["w2"].append(report["proxy_data_w2"]["mean"])
    if report.get("nearest_proxy"):
      row["nearest"].append(report["nearest_proxy"]["own_class"])
      row["chance"].append(report["nearest_proxy"]["chance"])
    if report.get("proxy_spread"):
      row["ratio"].append(report["proxy_spread"]["ratio"])
    row["spread"].append(report["test"]["spread"])
    row["margin"].append(report["test"]["margin"])
    row["positive"].append(report["test"]["margin_positive"])
  lines = ["| cell | n | proxy-data W2 (train, mean over classes) | own class's proxy nearest "
           "(chance) | proxy / data spread | test spread | test margin | test points with "
           "margin > 0 |", "|---|---|---|---|---|---|---|---|"]
  lines += [f"| {cell} | {len(row['spread'])} | {_mean_sd(row['w2'])} | "
            f"{_mean_sd(row['nearest'])}{_chance(row['chance'])} | {_mean_sd(row['ratio'])} | "
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
