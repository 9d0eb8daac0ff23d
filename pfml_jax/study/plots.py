"""An ablation's plot: a metric against the swept value, mean ± sd error bars per result."""

import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters and CI
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

_STYLES = {"final": dict(marker="o", capsize=4),
           "best": dict(marker="s", capsize=4, linestyle="--"),
           "validation": dict(marker="^", capsize=4, linestyle=":")}
_LABELS = {"final": "test, final", "best": "test, best over training",
           "validation": "validation classes (choose by these)"}


def _numeric(values: list[Any]) -> bool:
  return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def sweep_plot(result: dict[str, Any], out_dir: str | Path,
               metric: str = "recall@1") -> Path | None:
  """``<out_dir>/<study>_<metric>.png``, or None when the study sweeps nothing."""
  figure = sweep_figure(result, metric)
  if figure is None:
    return None
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  path = out_dir / f"{result['study']}_{metric.replace('@', '_at_')}.png"
  figure.savefig(path, dpi=120)
  plt.close(figure)
  return path


def sweep_figure(result: dict[str, Any], metric: str = "recall@1") -> plt.Figure | None:
  """The plot, or None when the study sweeps nothing.

  One line per result (test final and best, and the validation classes' result where the
  runs were validated) and per column group and other row labels when there are several;
  cells without finished runs leave a gap; the paper's points are crosses; a step-0 cell
  (``grid.with_floor``) is a dotted horizontal line.
  """
  sweep = result["sweep"]
  cells = [c for c in result["cells"] if sweep in c["values"]]
  if not sweep or not cells:
    return None
  xs_all = list(dict.fromkeys(c["values"][sweep] for c in cells))
  numeric = _numeric(xs_all)
  position = {x: (x if numeric else i) for i, x in enumerate(xs_all)}
  # "best" drawn a little to the right and validation to the left, so that equal bars show.
  span = (max(position.values()) - min(position.values())) or (
      max(abs(x) for x in position.values()) or 1)  # one value: dodge by a share of it
  dodge = {"final": 0.0, "best": 0.012 * span, "validation": -0.012 * span}
  series = list(dict.fromkeys(_series(c, sweep) for c in cells))
  figure, axes = plt.subplots(figsize=(6.4, 4.2))
  for key in series:
    members = [c for c in cells if _series(c, sweep) == key]
    prefix = f"{key}: " if len(series) > 1 else ""
    for name in _LABELS:
      stats = [c[name].get(metric) if c[name].get(metric, {}).get("n") else None
               for c in members]
      if any(stats):  # NaN where no run finished: the line breaks there
        axes.errorbar([position[c["values"][sweep]] + dodge[name] for c in members],
                      [s["mean"] if s else math.nan for s in stats],
                      yerr=[(s["sd"] or 0.0) if s else math.nan for s in stats],
                      label=prefix + _LABELS[name], **_STYLES[name])
    paper = [(position[c["values"][sweep]], c["paper"][metric]) for c in members
             if metric in c["paper"]]
    if paper:
      axes.plot([x for x, _ in paper], [y for _, y in paper], "kx", markersize=9,
                label=prefix + "paper")
  for floor in (c for c in result["cells"] if c.get("floor")):
    stat = floor["final"].get(metric)
    if stat and stat["n"]:  # the untrained model: a line, as it has no swept value
      axes.axhline(stat["mean"], color="0.4", linestyle=":",
                   label=f"{floor['group']}: step 0 (floor), test" if len(series) > 1 else
                   "step 0 (floor), test")
  axes.set_xticks(list(position.values()), [str(x) for x in xs_all])
  axes.set_xlabel(sweep)
  axes.set_ylabel(f"{metric.replace('recall@', 'Recall@')} (%)")
  title = f"{result['description'] or result['study']} (mean ± sd over seeds)"
  axes.set_title(textwrap.fill(title, 70), fontsize=10)
  axes.grid(alpha=0.3)
  axes.legend(fontsize=8)
  figure.tight_layout()
  return figure


def _series(cell: dict[str, Any], sweep: str) -> str:
  others = [f"{k}={v}" for k, v in cell["values"].items() if k != sweep]
  return " ".join(p for p in [cell["group"], cell["backbone"], cell["method"], *others] if p)
