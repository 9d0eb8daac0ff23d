"""HIST through the whole trainer: its own parameters are created, trained, sharded with the
proxies, checkpointed and restored like everything else."""

import jax
import numpy as np
import pytest

from pfml_jax.training import trainer
from tests.tiny_run import assert_trees_close, final_params, tiny_config

HIST = {"loss.name": "hist", "loss.hist.hgnn_hidden": 8, "model.embedding_norm": "layer_norm",
        "data.sampler": "random", "eval.protocol": "paper", "steps": 4}


@pytest.mark.slow  # two 4-step runs (1 and 8 devices) and their restores: ~100 s on 2 cores
def test_hist_trains_checkpoints_and_shards_its_parameters(image_folder, tmp_path):
  one, eight = tmp_path / "one", tmp_path / "eight"
  config = tiny_config(image_folder, **HIST)
  exp = trainer.build(config)
  initial = jax.device_get(exp.init(jax.random.key(config.seed)).trainable)
  result = trainer.train_and_evaluate(config, str(one))
  assert result["step"] == 4 and np.isfinite(result["test"]["recall@1"])
  trained = final_params(config, one)
  assert set(trained["loss"]) == {"proxies", "hgnn"}
  for part in ("proxies", "hgnn"):  # restored from the checkpoint, and moved by training
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(initial["loss"][part]),
                                                        jax.tree.leaves(trained["loss"][part])))

  # 8 devices, proxies and variances split across them: the 6 training classes padded to 8
  # rows whose padding never moves; the real rows equal the single-device run's.
  sharded = tiny_config(image_folder, **HIST, **{"mesh.data": 8, "mesh.shard_proxies": True})
  trainer.train_and_evaluate(sharded, str(eight))
  on_eight = final_params(sharded, eight)
  log_variances = on_eight["loss"]["proxies"]["log_variances"]
  assert trained["proxies"].shape == (6, 16)
  assert log_variances.shape == (8, 16) and np.all(log_variances[6:] == 0)
  np.testing.assert_allclose(log_variances[:6], trained["loss"]["proxies"]["log_variances"],
                             rtol=1e-4, atol=1e-4)
  assert_trees_close(on_eight["loss"]["hgnn"], trained["loss"]["hgnn"], tol=1e-4)
  assert_trees_close(on_eight["proxies"][:6], trained["proxies"], tol=1e-4)
