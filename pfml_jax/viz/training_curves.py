"""Training curves of a run from its ``metrics.jsonl``: loss, learning rates, Recall@1.

``metrics.jsonl`` holds one JSON object per line, each with a "step" and some scalars; the
trainer writes training scalars ("loss", "loss_above_floor" for PFML, "lr/<group>") every
``log_every_steps``, validation or test metrics ("val/recall@1", "test/recall@1") at each
evaluation, and at the end the report ("final_test/*", "selected_test/*" or "best_test/*").
"""

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pfml_jax.user_errors import MissingFileError
from pfml_jax.viz.figures import save_figure

LOSS_KEYS = ("loss", "loss_above_floor")
RECALL_CURVES = ("val/recall@1", "test/recall@1")
# The end-of-run report, one point each (metrics.jsonl's prefixes, see trainer.py).
RECALL_POINTS = ("final_test/recall@1", "selected_test/recall@1", "best_test/recall@1")
LR_PREFIX = "lr/"
FIGURE_SIZE, DPI = (12.0, 3.6), 100  # 1200 x 360 pixels


def read_metrics(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Every scalar of a metrics.jsonl as (steps, values), in file order; non-finite dropped.

  A last line cut short (a run still writing) is skipped.
  """
  path = Path(path)
  if not path.exists():
    raise MissingFileError(f"{path} not found: point at a run's workdir (it holds "
                           "metrics.jsonl once the first steps are logged).")
  series: dict[str, list[tuple[int, float]]] = {}
  for line in path.read_text().splitlines():
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      continue
    step = record.get("step")
    for key, value in record.items():
      if (key not in ("step", "time") and isinstance(value, (int, float)) and
          math.isfinite(value) and step is not None):
        series.setdefault(key, []).append((int(step), float(value)))
  return {key: (np.array([s for s, _ in pairs]), np.array([v for _, v in pairs]))
          for key, pairs in series.items()}


def draw_training_curves(metrics: dict[str, tuple[np.ndarray, np.ndarray]], out_path,
                         title: str = "") -> Path:
  """Loss, loss above floor (when logged), learning rates and Recall@1 against step."""
  losses = [key for key in LOSS_KEYS if key in metrics]
  figure, axes = plt.subplots(1, len(losses) + 2, figsize=FIGURE_SIZE, dpi=DPI,
                              layout="constrained", squeeze=False)
  axes = list(axes[0])
  for axis, key in zip(axes, losses):
    steps, values = metrics[key]
    axis.plot(steps, values, color="tab:blue")
    if key == "loss_above_floor" and np.all(values > 0):
      axis.set_yscale("log")
    axis.set(title=key, xlabel="step")
  _draw_learning_rates(axes[len(losses)], metrics)
  _draw_recall(axes[len(losses) + 1], metrics)
  if title:
    figure.suptitle(title)
  return save_figure(figure, out_path, DPI)


def _draw_learning_rates(axis, metrics) -> None:
  keys = sorted(key for key in metrics if key.startswith(LR_PREFIX))
  for key in keys:
    steps, values = metrics[key]
    axis.plot(steps, values, label=key[len(LR_PREFIX):])
  if keys and all(np.all(metrics[key][1] > 0) for key in keys):
    axis.set_yscale("log")
  axis.set(title="learning rates", xlabel="step")
  _legend_or_note(axis, keys, "no learning rates logged yet")


def _draw_recall(axis, metrics) -> None:
  drawn = []
  for key in RECALL_CURVES:
    if key in metrics:
      steps, values = metrics[key]
      axis.plot(steps, values, marker="o", markersize=3, label=key)
      drawn.append(key)
  for key, marker in zip(RECALL_POINTS, ("s", "D", "^")):
    if key in metrics:
      steps, values = metrics[key]
      axis.scatter(steps, values, marker=marker, s=40, zorder=3,
                   label=f"{key} {values[-1]:.3f}")
      drawn.append(key)
  axis.set(title="Recall@1", xlabel="step")
  _legend_or_note(axis, drawn, "no evaluation yet")


def _legend_or_note(axis, drawn, note: str) -> None:
  if drawn:
    axis.legend(fontsize=8)
  else:
    axis.text(0.5, 0.5, note, ha="center", va="center", transform=axis.transAxes)
