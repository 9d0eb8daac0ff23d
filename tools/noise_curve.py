"""The label-noise curve of one or more study folders: test Recall@1 of each loss at each noise
level (mean ± sample sd over seeds, n), as a Markdown table on stdout and a plot.

    python -m tools.noise_curve STUDY_DIR [STUDY_DIR ...] --losses=pfml,hist,triplet \
        --out=docs/reproduction/noise_curve.png > docs/reproduction/noise_curve.md

The result is the test result of the checkpoint chosen on validation (``best``); the step-0
floor, if a folder has one, is the plot's dotted line.
"""

import statistics

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from pfml_jax.command_line import fail, parse_tool_flags  # pylint: disable=wrong-import-position
from pfml_jax.study.aggregate import METHOD_NAMES  # pylint: disable=wrong-import-position
from pfml_jax.study.grid import FLOOR  # pylint: disable=wrong-import-position
from tools.effects_table import studies_per_seed  # pylint: disable=wrong-import-position

_FLAGS = flags.FlagValues()
flags.DEFINE_list("losses", None, "the losses of the curve, in the table's order",
                  flag_values=_FLAGS)
flags.DEFINE_string("out", None, "the plot's .png", flag_values=_FLAGS)
flags.DEFINE_string("metric", "recall@1", "the metric", flag_values=_FLAGS)
flags.mark_flags_as_required(["losses", "out"], flag_values=_FLAGS)


def _cell(runs: dict) -> str:
  values = list(runs.values())
  if len(values) < 2:
    return f"{values[0]:.1f} (n = 1)" if values else "—"
  return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f} (n = {len(values)})"


def curve(values: dict[tuple, dict], losses: list[str], metric: str, out: str) -> str:
  """The table's Markdown; draws the plot into ``out``."""
  noises = sorted({noise for method, noise in values if method in losses})
  name = lambda method: METHOD_NAMES.get(method, method)
  lines = [f"| loss | {' | '.join(f'noise {n:g}' for n in noises)} |",
           "|---|" + "---|" * len(noises)]
  figure, axes = plt.subplots(figsize=(6.4, 4.2))
  for method in losses:
    runs = [values.get((method, n), {}) for n in noises]
    lines.append(f"| {name(method)} | {' | '.join(_cell(r) for r in runs)} |")
    points = [(n, statistics.fmean(r.values()), statistics.stdev(r.values()) if len(r) > 1
               else 0.0) for n, r in zip(noises, runs) if r]
    axes.errorbar([p[0] for p in points], [p[1] for p in points], [p[2] for p in points],
                  marker="o", capsize=4, label=name(method))
  if values.get((FLOOR, 0.0)):
    floor = values[(FLOOR, 0.0)]
    lines.append(f"| Step 0 (floor) | {_cell(floor)} | {' | '.join('' for _ in noises[1:])} |")
    axes.axhline(statistics.fmean(floor.values()), color="0.4", linestyle=":",
                 label="step 0 (floor)")
  axes.set_xticks(noises, [f"{n:g}" for n in noises])
  axes.set_xlabel("label noise (share of training labels replaced)")
  axes.set_ylabel(f"test {metric.replace('recall@', 'Recall@')} (%)")
  axes.set_title("Label noise: mean ± sd over seeds (checkpoint chosen on validation)",
                 fontsize=10)
  axes.grid(alpha=0.3)
  axes.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(out, dpi=120)
  plt.close(figure)
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  folders = parse_tool_flags(_FLAGS, argv, __doc__)
  if not folders:
    fail("give the study's folder (or several).")
  values = studies_per_seed(folders, "best", _FLAGS.metric)
  missing = [loss for loss in _FLAGS.losses if not any(m == loss for m, _ in values)]
  if missing:
    fail(f"--losses: no finished run of {', '.join(missing)} in {', '.join(folders)}.")
  print(curve(values, _FLAGS.losses, _FLAGS.metric, _FLAGS.out))


if __name__ == "__main__":
  main()
