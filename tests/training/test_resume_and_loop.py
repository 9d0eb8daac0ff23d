"""Resume refuses changed input; the loop's cadences, timer and preemption return."""

import json
import os
import shutil
import signal
import threading
import time

import pytest

from pfml_jax.training import trainer
from pfml_jax.training.chrono import Chrono
from pfml_jax.training.loop import Cadence
from pfml_jax.user_errors import ConfigError
from tests.tiny_run import tiny_config


def test_resume_with_other_input_is_refused_unless_allowed(image_folder, tmp_path, caplog):
  trainer.train_and_evaluate(tiny_config(image_folder, steps=2), str(tmp_path))
  changed = tiny_config(image_folder, steps=4, seed=1, **{"data.label_noise": 0.5})
  with pytest.raises(ConfigError, match=r"step 2 .* other training input .*label_noise: 0\.0 "
                                        r"in the checkpoint, 0\.5 now.*seed: 0 in the "
                                        r"checkpoint, 1 now.*--allow_input_change"):
    trainer.train_and_evaluate(changed, str(tmp_path))
  batch = tiny_config(image_folder, steps=4, **{"data.images_per_class": 1,
                                                "data.classes_per_batch": 4})
  with pytest.raises(ConfigError, match="batch_size: 8 in the checkpoint, 4 now"):
    trainer.train_and_evaluate(batch, str(tmp_path))
  result = trainer.train_and_evaluate(changed, str(tmp_path), allow_input_change=True)
  assert result["final"]["step"] == 4
  assert "Resuming with changed input" in caplog.text
  # The same input resumes silently.
  assert trainer.train_and_evaluate(tiny_config(image_folder, steps=6, seed=1, **{
      "data.label_noise": 0.5}), str(tmp_path))["final"]["step"] == 6


def test_eval_mode_reads_neither_the_training_split_nor_the_optimizer(image_folder, tmp_path):
  """Evaluating a checkpoint works with every training image unreadable."""
  folder = tmp_path / "images"
  shutil.copytree(image_folder, folder)
  config = tiny_config(folder, steps=2)
  trained = trainer.train_and_evaluate(config, str(tmp_path / "run"))
  train_classes = trainer.read_splits(config)[0].class_names
  for name in train_classes:
    for image in (folder / name).iterdir():
      image.write_bytes(b"not an image")
  with pytest.raises(Exception, match="image"):
    trainer.read_splits(config)
  evaluated = trainer.evaluate_checkpoint(config, str(tmp_path / "run"), "latest")
  assert evaluated["test"] == pytest.approx(trained["final"]["test"])


def test_sigterm_returns_the_documented_keys(image_folder, tmp_path):
  config = tiny_config(image_folder, steps=400, log_every_steps=1)
  metrics = tmp_path / "metrics.jsonl"

  def send_sigterm_once_training():
    deadline = time.time() + 120
    while time.time() < deadline:
      if metrics.exists() and metrics.read_text().count("\n") >= 1:
        os.kill(os.getpid(), signal.SIGTERM)
        return
      time.sleep(0.05)

  thread = threading.Thread(target=send_sigterm_once_training)
  thread.start()
  result = trainer.train_and_evaluate(config, str(tmp_path))
  thread.join()
  assert set(result) == {"step", "preempted"} and result["preempted"] is True
  assert 1 <= result["step"] < 400
  saved = json.loads((tmp_path / "run_info.json").read_text())
  assert saved["total_steps"] == 400


def test_cadence_checks_preemption_only_at_its_interval():
  cadence = Cadence(total_steps=10, log_every=4, eval_every=5, checkpoint_every=3,
                    preemption_every=4)
  assert [d for d in range(1, 11) if cadence.check_preemption(d)] == [4, 8, 10]
  assert [d for d in range(1, 11) if cadence.log(d)] == [4, 8, 10]
  assert [d for d in range(1, 11) if cadence.evaluate(d)] == [5, 10]
  assert [d for d in range(1, 11) if cadence.checkpoint(d)] == [3, 6, 9]


def test_chrono_leaves_paused_time_out():
  chrono = Chrono()
  time.sleep(0.05)
  with chrono.paused():
    time.sleep(0.3)
  timing = chrono.window(steps=1, batch_size=10)
  assert 0.04 < timing["step_time_s"] < 0.25, timing
  assert timing["images_per_s"] == pytest.approx(10 / timing["step_time_s"])
