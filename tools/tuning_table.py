"""The Markdown table of a folder of ``study tune`` searches (``DIR/<loss>/``): per loss, the
dimensions searched, the trials run, the spread of their validation results and the chosen
setting.

    python -m tools.tuning_table DIR > docs/reproduction/<regime>_tuning.md
"""

import csv
import json
import statistics
from pathlib import Path

from absl import flags

from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.study.aggregate import METHOD_NAMES
from pfml_jax.study.tune import CHOSEN, TRIALS


def _value(value) -> str:
  return f"{value:.3g}" if isinstance(value, float) else str(value)


def row(search: Path) -> str:
  chosen = json.loads((search / CHOSEN).read_text())
  with open(search / TRIALS, newline="") as handle:
    trials = list(csv.DictReader(handle))
  values = [float(t[chosen["metric"]]) for t in trials if t["state"] == "complete"]
  setting = ", ".join(f"{name} {_value(v)}" for name, v in chosen["params"].items())
  return (f"| {METHOD_NAMES.get(chosen['loss'], chosen['loss'])} | {len(chosen['params'])} | "
          f"{chosen['complete']} of {chosen['trials']} ({chosen['failed']} failed) | "
          f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f} | "
          f"{chosen['trial']} | {setting} |")


def table(folder: Path) -> str:
  searches = sorted(p.parent for p in folder.glob(f"*/{CHOSEN}"))
  if not searches:
    fail(f"{folder}: no <loss>/{CHOSEN} under it; run `study tune` first.")
  lines = ["| loss | dimensions | trials complete | validation R@1 min / median / max | chosen "
           "trial | chosen setting |", "|---|---|---|---|---|---|"]
  return "\n".join(lines + [row(search) for search in searches])


def main(argv: list[str] | None = None) -> None:
  folders = parse_tool_flags(flags.FlagValues(), argv, __doc__)
  if len(folders) != 1:
    fail("give one argument, the folder of searches.")
  print(table(Path(folders[0])))


if __name__ == "__main__":
  main()
