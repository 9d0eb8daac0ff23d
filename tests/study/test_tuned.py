"""`study --tuned=DIR`: one cell per loss at the setting its search chose, crossed with a
sweep and a floor, through the command line; bad input is one `error:` line."""

import json
import shlex

from pfml_jax.study.search_space import search_space
from tests.study.tiny_study import study_cli

SETUP = "configs/small/shared_scratch.py"


def write_chosen(folder, loss, overrides, config=SETUP):
  """A search's chosen.json with the fields `study tune` writes and --tuned reads."""
  (folder / loss).mkdir(parents=True)
  (folder / loss / "chosen.json").write_text(json.dumps({
      "loss": loss, "config": config, "metric": "recall@1", "value": 61.5, "trial": 3,
      "trials": 10, "overrides": {"loss.name": loss, **overrides}}))


def test_each_loss_runs_its_chosen_setting_at_every_sweep_value(tmp_path):
  write_chosen(tmp_path, "pfml", {"optim.learning_rate": 0.004, "loss.pfml.alpha": 2.5})
  write_chosen(tmp_path, "triplet", {"optim.learning_rate": 0.0007,
                                     "loss.triplet.mining": "batch_hard"})
  result = study_cli("emit", f"--tuned={tmp_path}", "--floor", "--emit=commands",
                     "--sweep=data.label_noise=0.0,0.2", "--seeds=0,1", "--workdir=w")
  assert result.returncode == 0, result.stderr
  runs = [shlex.split(line) for line in result.stdout.splitlines()]
  assert len(runs) == (1 + 2 * 2) * 2  # the floor, then 2 losses x 2 noise levels, 2 seeds
  assert all(f"--config={SETUP}" in run for run in runs)
  floor, clean, noisy = runs[:2], runs[2:6], runs[6:]
  pfml, triplet = clean[:2] + noisy[:2], clean[2:] + noisy[2:]  # every loss clean first
  assert all("--config.steps=1" in run for run in floor)
  assert all({"--config.loss.name=pfml", "--config.optim.learning_rate=0.004",
              "--config.loss.pfml.alpha=2.5"} <= set(run) for run in pfml)
  assert all({"--config.loss.name=triplet", "--config.loss.triplet.mining=batch_hard"}
             <= set(run) for run in triplet)
  noise = [next(a for a in run if a.startswith("--config.data.label_noise=")) for run in pfml]
  assert sorted(noise) == ["--config.data.label_noise=0.0"] * 2 + [
      "--config.data.label_noise=0.2"] * 2


def test_searches_of_different_setups_or_none_are_an_error(tmp_path):
  write_chosen(tmp_path, "pfml", {})
  write_chosen(tmp_path, "triplet", {}, config="configs/small/shared_pretrained.py")
  for folder, message in ((tmp_path, "tuned different setups"),
                          (tmp_path / "nothing", "holds no <loss>/chosen.json")):
    result = study_cli("emit", f"--tuned={folder}", "--emit=commands", "--workdir=w")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line


def test_a_list_of_searches_makes_a_cell_each(tmp_path):
  for loss in ("pfml", "hist", "triplet"):
    write_chosen(tmp_path, loss, {})
  result = study_cli("emit", f"--tuned={tmp_path / 'pfml'},{tmp_path / 'triplet'}",
                     "--emit=commands", "--seeds=0", "--workdir=w")
  assert result.returncode == 0, result.stderr
  losses = [next(a for a in shlex.split(line) if a.startswith("--config.loss.name="))
            for line in result.stdout.splitlines()]
  assert losses == ["--config.loss.name=pfml", "--config.loss.name=triplet"]


def test_the_learning_rate_is_searched_a_decade_around_the_setups_rate():
  for base in (1e-4, 2e-3):
    (rate,) = [d for d in search_space("triplet", base) if d.name == "learning_rate"]
    assert (rate.low, rate.high, rate.log) == (base / 10, base * 10, True)
