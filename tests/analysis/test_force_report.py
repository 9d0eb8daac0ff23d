"""The force report of a real tiny run: the checkpoint's and the initial state's."""

import json

import jax
import numpy as np
import pytest

from pfml_jax.analysis import force_report
from pfml_jax.evaluation import field_forces
from pfml_jax.evaluation.trained_model import load_trained_model
from pfml_jax.training import setup as setup_lib
from pfml_jax.training import trainer
from pfml_jax.user_errors import EXIT_STATUS
from tests.colour_images import write_colour_classes
from tests.tiny_run import tiny_config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """A finished 2-step PFML run on 12 colour classes with a tiny ViT, and its config."""
  root = write_colour_classes(tmp_path_factory.mktemp("images"))
  workdir = tmp_path_factory.mktemp("run")
  config = tiny_config(root, steps=2)
  trainer.train_and_evaluate(config, str(workdir))
  return workdir, config


@pytest.mark.slow  # ~20 s: a 2-step training run, then the model embedded twice
def test_command_reports_the_checkpoint_and_the_initial_state(tiny_run, tmp_path, capsys):
  workdir, config = tiny_run
  out = tmp_path / "end.json"
  force_report.main([f"--workdir={workdir}", f"--out={out}", "--batches=2"])
  end = json.loads(out.read_text())
  assert json.loads(capsys.readouterr().out) == end
  init = force_report.run_field_report(workdir, at_init=True, batches=2)
  model = load_trained_model(workdir, "latest")
  fresh = setup_lib.build(config).init(jax.random.key(config.seed)).proxies
  settings = (config.loss.pfml.delta_att, config.loss.pfml.delta_rep)
  for report, proxies in ((end, model.proxies), (init, np.asarray(fresh))):
    x = proxies[model.proxy_labels >= 0]
    expected = field_forces.pair_distance_summary(x, model.proxy_labels[model.proxy_labels >= 0],
                                                  *settings)["embedding_embedding"]
    assert report["distances"]["proxy_proxy"] == expected  # same float64 code, same inputs
    assert report["points"] == {"embeddings": 4 * 6, "proxies": 4 * 2}  # 4 train classes of 6
    assert (report["gradient"]["batches"], report["gradient"]["batch_size"]) == (2, 8)
  assert end["run"]["state"] == "step 2" and init["run"]["state"] == "init"
  pfml = config.loss.pfml
  assert end["field"] == {key: pfml[key] for key in ("alpha", "delta_att", "delta_rep",
                                                     "normalize_proxies", "proxy_self_attraction")}
  assert end["distances"]["proxy_proxy"] != init["distances"]["proxy_proxy"]


def test_command_names_a_missing_run(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    force_report.main([f"--workdir={tmp_path}"])
  assert exit_info.value.code == EXIT_STATUS
  assert "no checkpoints/" in capsys.readouterr().err
