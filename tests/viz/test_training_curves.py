"""Training curves read the keys a real run writes to metrics.jsonl, and draw them."""

import json

from PIL import Image

from pfml_jax.viz import training_curves


def test_reads_the_keys_a_real_run_writes(tiny_run):
  metrics = training_curves.read_metrics(tiny_run / "metrics.jsonl")
  for key in ("loss", "loss_above_floor", "lr/backbone", "lr/head", "lr/proxies"):
    assert list(metrics[key][0]) == [2, 4, 6], key  # log_every_steps = 2
  assert list(metrics["val/recall@1"][0]) == [3, 6]  # every epoch of 3 steps
  # What the curves draw is every loss, recall curve and report point the run has.
  assert set(training_curves.LOSS_KEYS) <= set(metrics)
  assert "val/recall@1" in training_curves.RECALL_CURVES
  assert {"final_test/recall@1", "selected_test/recall@1"} <= set(training_curves.RECALL_POINTS)
  lines = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
  losses = [line["loss"] for line in lines if "loss" in line]
  assert list(metrics["loss"][1]) == losses
  final = [line["final_test/recall@1"] for line in lines if "final_test/recall@1" in line]
  assert list(metrics["final_test/recall@1"][1]) == final and len(final) == 1


def test_a_line_cut_short_by_a_running_writer_is_skipped(tiny_run, tmp_path):
  text = (tiny_run / "metrics.jsonl").read_text()
  (tmp_path / "metrics.jsonl").write_text(text + '{"step": 8, "loss": 1.')
  metrics = training_curves.read_metrics(tmp_path / "metrics.jsonl")
  assert list(metrics["loss"][0]) == [2, 4, 6]


def test_curves_png(tiny_run, tmp_path):
  metrics = training_curves.read_metrics(tiny_run / "metrics.jsonl")
  path = training_curves.draw_training_curves(metrics, tmp_path / "curves.png", title="tiny")
  with Image.open(path) as image:
    assert image.format == "PNG"
    assert image.size == tuple(round(v * training_curves.DPI) for v in training_curves.FIGURE_SIZE)
  # Before any evaluation (only training scalars), and for a loss without a floor.
  early = {key: metrics[key] for key in ("loss", "lr/head")}
  path = training_curves.draw_training_curves(early, tmp_path / "early.png")
  assert path.stat().st_size > 0
