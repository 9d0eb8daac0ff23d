"""The tiny run many tests train: its config on the 12-colour image folder (tests/conftest.py's
``image_folder``), and how to read and compare its checkpointed parameters."""

import jax
import numpy as np

from pfml_jax import default_config
from pfml_jax.checkpoint.checkpoints import Checkpoints
from pfml_jax.training import trainer


def tiny_config(root, **overrides):
  """PFML with a tiny ViT on the image folder at ``root``: 6 steps, validated protocol;
  ``overrides`` by dotted field ({"data.sampler": "random"}) or top-level name (steps=4)."""
  config = default_config.get_config()
  config.data.name = "image_folder"
  config.data.root = str(root)
  config.eval.protocol = "validated"
  config.data.val_classes = 2  # train: 4 classes, val: 2, test: 6
  config.data.classes_per_batch = 4
  config.data.images_per_class = 2
  config.data.workers = 0
  config.model.backbone = "vit_tiny"
  config.model.embedding_dim = 16
  config.model.dtype = "float32"
  config.model.frozen_bn = False
  config.loss.pfml.proxies_per_class = 2
  config.optim.learning_rate = 1e-3
  # A large Adam epsilon: parameters whose gradient is pure rounding noise (e.g. the key bias
  # of attention, which softmax ignores) would otherwise move by +-lr on the noise's sign and
  # make runs on different device counts incomparable.
  config.optim.eps = 1e-3
  config.optim.warmup_epochs = 1
  config.steps = 6
  config.eval.every_epochs = 1  # 3 steps per epoch: validation at steps 3 and 6
  config.eval.batch_size = 16
  config.eval.backend = "jax"
  config.checkpoint.every_steps = 2
  config.log_every_steps = 2
  config.mesh.data = 1
  config.plots = False  # the pictures are tested in tests/viz
  for key, value in overrides.items():
    section, _, field = key.rpartition(".")
    (config[section] if section else config)[field] = value
  return config


def final_params(config, workdir, step=None):
  """The trainable parameters of checkpoint ``step`` (latest by default), on the host."""
  exp = trainer.build(config)
  checkpoints = Checkpoints(workdir, keep=5, selection_metric="recall@1", read_only=True)
  state, _ = checkpoints.restore(step or checkpoints.latest_step(),
                                 exp.abstract_sharded_state())
  return jax.device_get(state.trainable)


def assert_trees_close(a, b, tol=1e-5):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=tol, atol=tol)
