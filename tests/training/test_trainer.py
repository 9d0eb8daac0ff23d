"""Whole runs on CPU: train -> checkpoint -> resume -> eval, meshes, processes, preemption."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from pfml_jax.checkpoint.checkpoints import Checkpoints
from pfml_jax.training import trainer
from tests.tiny_run import assert_trees_close, final_params, tiny_config

REPO = Path(__file__).resolve().parents[2]


def test_train_checkpoint_resume_and_eval(image_folder, tmp_path):
  config = tiny_config(image_folder, steps=4)
  result = trainer.train_and_evaluate(config, str(tmp_path))
  assert set(result) == {"protocol", "step", "val", "test", "selection_metric", "final"}
  assert 0.0 <= result["test"]["recall@1"] <= 1.0
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines if "loss" in l] == [2, 4]
  info = json.loads((tmp_path / "run_info.json").read_text())
  assert info["config"]["steps"] == 4 and "jax" in info["packages"]
  assert (tmp_path / "tensorboard").is_dir()

  # Resume to 6 steps: continues from the step-4 checkpoint, not from scratch.
  resumed = trainer.train_and_evaluate(tiny_config(image_folder, steps=6), str(tmp_path))
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines if "loss" in l] == [2, 4, 6]
  checkpoints = Checkpoints(tmp_path, keep=3, selection_metric="recall@1", read_only=True)
  assert checkpoints.latest_step() == 6

  # Eval mode restores a checkpoint and reproduces the training run's test metrics.
  evaluated = trainer.evaluate_checkpoint(tiny_config(image_folder), str(tmp_path),
                                          str(resumed["step"]))
  assert evaluated["test"] == pytest.approx(resumed["test"])
  assert json.loads((tmp_path / "eval" / f"step_{resumed['step']}.json").read_text())


def test_paper_protocol_reports_final_and_best_on_test(image_folder, tmp_path):
  """All training classes train; test every epoch (36 images, batch 8: steps 5 and 6, the
  end); both numbers labelled."""
  config = tiny_config(image_folder, **{"eval.protocol": "paper"})
  assert trainer.build(config).train.num_classes == 6  # validated: 4 (2 held out)
  result = trainer.train_and_evaluate(config, str(tmp_path))
  history = {s: json.loads((tmp_path / "eval" / f"step_{s}.json").read_text())["test"]
             for s in (5, 6)}
  assert result["protocol"] == "paper" and result["val"] is None and result["step"] == 6
  assert result["test"] == history[6]
  best = result["best_on_test"]
  assert best["test"]["recall@1"] == max(h["recall@1"] for h in history.values())
  assert history[best["step"]] == best["test"] and "optimistic" in best["note"]
  summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
  assert summary["best_on_test"]["step"] == best["step"]
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines if "test/recall@1" in l] == [5, 6]
  final = [l for l in lines if "best_test/recall@1" in l]
  assert final[0]["best_test/recall@1"] == best["test"]["recall@1"]


def test_label_noise_record_lists_every_changed_label(image_folder, tmp_path):
  """label_noise.json holds the full lists (not NumPy's abbreviated str), so the corruption
  of a noise-study run can be audited and replayed."""
  config = tiny_config(image_folder, steps=1, **{"data.label_noise": 0.5})
  trainer.train_and_evaluate(config, str(tmp_path))
  record = json.loads((tmp_path / "label_noise.json").read_text())
  clean = trainer.read_splits(tiny_config(image_folder))[0].labels
  noisy = trainer.read_splits(config)[0].labels
  changed = np.flatnonzero(clean != noisy)
  assert record["indices"] == changed.tolist() and len(changed) > 0
  assert record["original"] == clean[changed].tolist()
  assert record["noisy"] == noisy[changed].tolist()


def test_evaluation_compiles_the_embedding_once(image_folder):
  """A second and third evaluation (as every eval.every_epochs in training) compile nothing."""
  exp = trainer.build(tiny_config(image_folder))
  state = exp.init(jax.random.key(0))
  exp.evaluator(state.variables(), exp.val)
  records = []
  handler = logging.Handler()
  handler.emit = records.append
  logging.getLogger("jax").addHandler(handler)
  try:
    with jax.log_compiles():
      for _ in range(2):
        exp.evaluator(state.variables(), exp.val)
  finally:
    logging.getLogger("jax").removeHandler(handler)
  compiles = [r.getMessage() for r in records if "Compiling" in r.getMessage()]
  assert not compiles, compiles


def test_validation_classes_do_not_depend_on_the_seed(image_folder):
  val_classes = [tuple(sorted(set(trainer.read_splits(tiny_config(image_folder, seed=seed))[1]
                                  .class_names)))
                 for seed in (0, 1)]
  assert val_classes[0] == val_classes[1]
  moved = trainer.read_splits(tiny_config(image_folder, **{"data.split_seed": 3}))[1]
  assert len(moved.class_names) == 2


def test_naming_a_baseline_gives_its_own_proxies(image_folder):
  exp = trainer.build(tiny_config(image_folder, **{"loss.name": "proxy_anchor"}))
  assert exp.loss.proxies_per_class == 1 and exp.loss.hparams == {"alpha": 32.0, "margin": 0.1}
  assert exp.abstract_state.trainable["proxies"].shape == (4, 16)


def test_resumed_run_matches_uninterrupted(image_folder, tmp_path):
  straight = tmp_path / "straight"
  trainer.train_and_evaluate(tiny_config(image_folder), str(straight))
  split = tmp_path / "split"
  trainer.train_and_evaluate(tiny_config(image_folder, steps=3), str(split))
  trainer.train_and_evaluate(tiny_config(image_folder), str(split))
  config = tiny_config(image_folder)
  assert_trees_close(final_params(config, straight, 6), final_params(config, split, 6))


def test_eight_devices_equal_one_and_restore_onto_another_mesh(image_folder, tmp_path):
  assert jax.device_count() == 8
  one, eight = tmp_path / "one", tmp_path / "eight"
  trainer.train_and_evaluate(tiny_config(image_folder), str(one))
  trainer.train_and_evaluate(tiny_config(image_folder, **{"mesh.data": 8,
                                                          "mesh.shard_proxies": True}),
                             str(eight))
  # Checkpoints written on 8 devices restore onto a 2-device mesh (and vice versa).
  two = tiny_config(image_folder, **{"mesh.data": 2})
  assert_trees_close(final_params(two, one), final_params(two, eight), tol=1e-4)
  evaluated = trainer.evaluate_checkpoint(two, str(eight), "latest")
  assert evaluated["step"] == 6


def test_grain_input_mode_trains(image_folder, tmp_path):
  result = trainer.train_and_evaluate(
      tiny_config(image_folder, steps=2, **{"data.input_mode": "grain",
                                            "eval.protocol": "paper"}),
      str(tmp_path))
  assert result["val"] is None and result["step"] == 2


def test_proxy_anchor_recipe_trains(image_folder, tmp_path):
  """Proxy Anchor's recipe in small (random batches, value clipping, a step schedule) under
  the paper protocol."""
  result = trainer.train_and_evaluate(
      tiny_config(image_folder, steps=2, **{
          "data.sampler": "random", "eval.protocol": "paper", "loss.name": "proxy_anchor",
          "optim.clip": "value", "optim.schedule": "step", "optim.step_epochs": (1,)}),
      str(tmp_path))
  assert result["step"] == 2 and "best_on_test" in result


def test_non_finite_loss_stops_and_keeps_good_checkpoints(image_folder, tmp_path):
  config = tiny_config(image_folder, steps=6, **{"optim.learning_rate": 1e38,
                                                 "optim.warmup_epochs": 0})
  with pytest.raises(trainer.NonFiniteLossError, match="not finite"):
    trainer.train_and_evaluate(config, str(tmp_path))


def test_bad_config_value_is_named(image_folder, tmp_path):
  with pytest.raises(ValueError, match="data.label_noise"):
    trainer.train_and_evaluate(tiny_config(image_folder, **{"data.label_noise": 1.5}),
                               str(tmp_path))
  with pytest.raises(ValueError, match="data.images_per_class: loss 'triplet' learns from"):
    trainer.build(tiny_config(image_folder, **{"loss.name": "triplet",
                                               "data.images_per_class": 1}))
  # A bad loss hyperparameter fails before any data is read (this root does not exist).
  with pytest.raises(ValueError, match="delta_att must be a finite number > 0"):
    trainer.train_and_evaluate(tiny_config(tmp_path / "missing", **{
        "loss.pfml.delta_att": -0.2}), str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()


def main_command(config_path, workdir, *flags):
  return [sys.executable, "-m", "pfml_jax.main", f"--config={config_path}",
          f"--workdir={workdir}", *flags]


def subprocess_env(devices):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} "
                       "--xla_backend_optimization_level=0")
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  return env


@pytest.fixture(scope="module")
def config_file(image_folder, tmp_path_factory):
  """The tiny config as a config file the command line can load."""
  path = tmp_path_factory.mktemp("configs") / "tiny.py"
  path.write_text(
      "from tests.tiny_run import tiny_config\n\n\n"
      f"def get_config():\n  return tiny_config({str(image_folder)!r})\n")
  return path


def test_command_line_overrides_and_sigterm_resume(config_file, tmp_path, image_folder):
  """main.py with --config overrides; SIGTERM mid-run saves; rerunning ends where an
  uninterrupted run (same command, same environment) ends."""
  def command(workdir):
    return main_command(config_file, workdir, "--config.steps=12", "--config.log_every_steps=1")

  workdir = tmp_path / "preempted"
  process = subprocess.Popen(command(workdir), env=subprocess_env(1), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  metrics = workdir / "metrics.jsonl"
  deadline = time.time() + 300
  while time.time() < deadline and process.poll() is None:
    if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
      process.send_signal(signal.SIGTERM)
      break
    time.sleep(0.1)
  output = process.communicate(timeout=300)[0]
  assert process.returncode == 0, output
  stopped = Checkpoints(workdir, keep=3, selection_metric="recall@1", read_only=True)
  assert 2 <= stopped.latest_step() < 12, output
  for run in (workdir, tmp_path / "straight"):
    finished = subprocess.run(command(run), env=subprocess_env(1), cwd=REPO,
                              capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
  info = json.loads((workdir / "run_info.json").read_text())
  assert info["config"]["steps"] == 12  # the override reached the run
  config = tiny_config(image_folder, steps=12)
  assert_trees_close(final_params(config, workdir, 12),
                     final_params(config, tmp_path / "straight", 12), tol=1e-6)


def test_two_processes_match_one(config_file, tmp_path, image_folder):
  workdir = tmp_path / "two"
  launched = subprocess.run(
      ["bash", str(REPO / "launch" / "local.sh"), "2", f"--config={config_file}",
       f"--workdir={workdir}", "--config.mesh.data=2"],
      env=dict(subprocess_env(1), PYTHON=sys.executable), cwd=REPO, capture_output=True,
      text=True, timeout=900)
  logs = "".join(p.read_text() for p in sorted((workdir / "logs").glob("*.log")))
  assert launched.returncode == 0, logs[-4000:]
  single = tmp_path / "single"
  finished = subprocess.run(
      main_command(config_file, single, "--config.mesh.data=2"), env=subprocess_env(2),
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert finished.returncode == 0, finished.stderr[-3000:]
  config = tiny_config(image_folder, **{"mesh.data": 2})
  assert_trees_close(final_params(config, workdir, 6), final_params(config, single, 6), tol=1e-4)


@pytest.mark.parametrize("loss", ["triplet", "multi_similarity"])
def test_losses_without_proxies_train_checkpoint_and_evaluate(image_folder, tmp_path, loss):
  """Their state holds no zero-size proxies array (orbax refuses to save one)."""
  config = tiny_config(image_folder, steps=2, **{"loss.name": loss})
  result = trainer.train_and_evaluate(config, str(tmp_path))
  assert result["final"]["step"] == 2
  assert "proxies" not in trainer.build(config).abstract_state.trainable
  evaluated = trainer.evaluate_checkpoint(config, str(tmp_path), "latest")
  assert evaluated["test"] == pytest.approx(result["final"]["test"])


def test_diagnostics_of_the_final_state(image_folder, tmp_path):
  """eval/diagnostics.json holds the proxy-data W2 and spread / margin of the final model,
  equal to diagnostics.py on the checkpoint's own embeddings and proxies."""
  from pfml_jax.evaluation.diagnostics import training_diagnostics
  from pfml_jax.evaluation.evaluator import make_evaluator
  from pfml_jax.evaluation.trained_model import load_trained_model
  config = tiny_config(image_folder, steps=2)
  trainer.train_and_evaluate(config, str(tmp_path))
  written = json.loads((tmp_path / "eval" / "diagnostics.json").read_text())
  model = load_trained_model(tmp_path, "latest")
  train, _, test = trainer.read_splits(config)
  evaluator = make_evaluator(model.embedder, trainer.build(config).mesh, config.eval)
  expected = training_diagnostics(model.proxies, model.proxy_labels,
                                  *evaluator.embeddings(model.variables, train),
                                  *evaluator.embeddings(model.variables, test))
  assert written["proxy_data_w2"]["classes"] == train.num_classes == 4
  assert written["proxy_data_w2"]["mean"] == pytest.approx(expected["proxy_data_w2"]["mean"])
  assert written["test"] == pytest.approx(expected["test"])
