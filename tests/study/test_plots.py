"""The ablation plot drawn from an aggregate result: each result's line holds its cells' means,
the validation classes' result among them, the floor is a line at its test result, and a long
title wraps inside the figure."""

import matplotlib.pyplot as plt
import pytest

from pfml_jax.study.plots import sweep_figure, sweep_plot


def _cell(alpha, test, validation):
  stat = lambda mean: {"recall@1": {"mean": mean, "sd": 0.5, "n": 2}} if mean else {}
  return {"cell": f"alpha_{alpha}", "group": "pretrained", "backbone": "", "method": "PFML",
          "values": {"alpha": alpha}, "final": stat(test), "best": stat(test + 0.1),
          "validation": stat(validation), "paper": {"recall@1": 92.7} if alpha == 3 else {}}


RESULT = {"study": "alpha", "sweep": "alpha",
          "description": "Ablation: repulsion beyond attraction, delta_rep - delta_att, a long "
                         "title that would run out of the figure on one line",
          "cells": [_cell(1, 90.0, 95.0), _cell(3, 91.0, 96.5), _cell(6, 90.5, None),
                    dict(_cell(None, 89.9, 95.5), values={}, floor=True)]}


def test_every_result_is_a_line_of_its_cells_means():
  figure = sweep_figure(RESULT)
  (axes,) = figure.axes
  handles, labels = axes.get_legend_handles_labels()
  lines = {label: handle.lines[0].get_ydata() for handle, label in zip(handles, labels)
           if label not in ("paper", "step 0 (floor), test")}
  (floor,) = [h for h, label in zip(handles, labels) if label == "step 0 (floor), test"]
  assert list(floor.get_ydata()) == [89.9, 89.9]  # the floor's test result, across the plot
  assert lines["test, final"].tolist() == [90.0, 91.0, 90.5]
  assert lines["test, best over training"].tolist() == pytest.approx([90.1, 91.1, 90.6])
  validation = lines["validation classes (choose by these)"]
  assert validation[:2].tolist() == [95.0, 96.5] and validation[2] != validation[2]  # NaN gap
  assert "paper" in labels
  title = axes.get_title().splitlines()
  assert len(title) > 1 and max(map(len, title)) <= 70
  plt.close(figure)


def test_a_study_without_a_sweep_has_no_plot(tmp_path):
  assert sweep_plot(dict(RESULT, sweep=None), tmp_path) is None
  assert list(tmp_path.iterdir()) == []
