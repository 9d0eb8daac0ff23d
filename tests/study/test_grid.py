"""Grids expand to the right cells, runs and folder names; the shipped studies' shapes."""

import pytest

from pfml_jax import experiments
from pfml_jax.study.grid import Cell, Study, sweep_study
from pfml_jax.study.studies import STUDIES, named_study
from pfml_jax.user_errors import ConfigError


def test_sweep_grid_is_every_combination_with_readable_folders():
  study = sweep_study("demo_grid", ["configs/demo.py"],
                      [("loss.pfml.alpha", [1, 3]), ("optim.learning_rate", [0.001, 0.01])],
                      seeds=[0, 7], fixed=[("steps", 5)])
  names = [cell.name for cell in study.cells]
  assert names == ["demo-alpha_1-learning_rate_0.001", "demo-alpha_1-learning_rate_0.01",
                   "demo-alpha_3-learning_rate_0.001", "demo-alpha_3-learning_rate_0.01"]
  assert [run.folder for run in study.runs()][:3] == [
      "demo-alpha_1-learning_rate_0.001/seed_0", "demo-alpha_1-learning_rate_0.001/seed_7",
      "demo-alpha_1-learning_rate_0.01/seed_0"]
  assert len(study.runs()) == 8
  assert study.cells[1].arguments() == [
      "--config=configs/demo.py", "--config.steps=5", "--config.loss.pfml.alpha=1",
      "--config.optim.learning_rate=0.01"]
  assert study.sweep == ""  # two swept fields: a table, no single x axis


def test_same_last_name_keeps_the_whole_path_and_recipe_is_named():
  study = sweep_study("s", ["configs/cub_resnet50.py:proxy_anchor"],
                      [("loss.pfml.alpha", [2]), ("loss.proxy_anchor.alpha", [16])], seeds=[0])
  (cell,) = study.cells
  assert cell.recipe == "proxy_anchor" and cell.stem == "cub_resnet50"
  assert cell.name == "cub_resnet50-proxy_anchor-loss.pfml.alpha_2-loss.proxy_anchor.alpha_16"


def test_study_round_trips_through_json():
  study = named_study("delta_gap", seeds=[3, 4])
  assert Study.from_json(study.to_json()) == study


def test_bad_grids_are_named():
  cell = Cell("configs/demo.py")
  with pytest.raises(ConfigError, match="share a folder name"):
    Study("twice", (cell, cell), (0,))
  with pytest.raises(ConfigError, match="seeds"):
    Study("no_seeds", (cell,), ())
  with pytest.raises(ConfigError, match="Unknown study 'nope'"):
    named_study("nope")
  with pytest.raises(ConfigError, match="ablations"):
    named_study("table1", config="configs/demo.py")


def test_shipped_studies():
  table1 = named_study("table1")
  assert len(table1.cells) == 12 and len({c.config for c in table1.cells}) == 12
  assert dict(next(c for c in table1.cells if c.name == "sop_dino").paper) == {
      "recall@1": 86.5, "recall@10": 95.1, "recall@100": 98.0}
  noise = named_study("label_noise")
  methods = {c.recipe or "pfml" for c in noise.cells}
  expected = {"pfml", "proxy_anchor", "proxy_nca", "multi_similarity", "triplet", "hist"}
  assert methods == {m for m in expected if m in experiments.RECIPES}
  assert len(noise.cells) == 4 * len(methods) and noise.seeds == (0, 1, 2, 3, 4)
  noisy_pfml = next(c for c in noise.cells if c.name == "cars_resnet50-noise_0.2")
  assert dict(noisy_pfml.overrides) == {"data.label_noise": 0.2}
  assert dict(noisy_pfml.paper) == {"recall@1": 84.5, "recall@2": 88.6}
  gap = named_study("delta_gap")
  assert [dict(c.overrides)["loss.pfml.delta_rep"] for c in gap.cells] == [
      0.2, 0.25, 0.3, 0.35, 0.4, 0.45]
  assert dict(gap.cells[-1].paper) == {"recall@1": 83.2}
  assert [dict(c.values)["M"] for c in named_study("proxies").cells] == [0, 1, 5, 10, 15, 20]
  demo_alpha = named_study("alpha", config="configs/demo.py")
  assert demo_alpha.cells[0].name == "demo-alpha_1" and not demo_alpha.cells[2].paper
  assert set(STUDIES) == {"table1", "label_noise", "alpha", "delta", "proxies", "delta_gap",
                          "small_pretrained", "small_scratch", "small_proxy_init",
                          "demo_recipe"}
  starts = named_study("small_proxy_init")
  assert {dict(c.overrides)["loss.proxy_init"] for c in starts.cells} == {"class_mean"}
  demo = named_study("demo_recipe")
  assert {c.config for c in demo.cells} == {"configs/small/demo_recipe.py"}
  assert [dict(c.overrides).get("loss.pfml.delta_att") for c in demo.cells] == [0.5, None, None]
  assert dict(demo.cells[2].overrides)["loss.name"] == "proxy_anchor"
  small = named_study("small_scratch")
  assert {c.config for c in small.cells} == {f"configs/small/scratch.py:{m}" for m in (
      "pfml", "proxy_anchor", "proxy_nca", "normalized_softmax", "multi_similarity", "triplet",
      "hist")}
  assert len(small.cells) == 7 and small.seeds == (0, 1, 2)
  assert all(c.overrides == () for c in small.cells)  # each recipe as published, clean
