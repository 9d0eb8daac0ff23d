"""A tiny real run for the run pictures: 12 colour classes, a tiny ViT, 6 steps (~10 s)."""

import numpy as np
import pytest
from PIL import Image

from pfml_jax import default_config
from pfml_jax.training import trainer

NUM_CLASSES, PER_CLASS = 12, 6  # validated protocol: 4 train, 2 val, 6 test classes


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """The workdir of a finished 6-step PFML run (checkpoints, metrics.jsonl, eval/)."""
  root = tmp_path_factory.mktemp("images")
  rng = np.random.default_rng(0)
  for c in range(NUM_CLASSES):
    (root / f"class_{c:02d}").mkdir()
    base = rng.integers(0, 256, 3)
    for i in range(PER_CLASS):
      pixels = np.clip(base + rng.normal(0, 40, (40, 48, 3)), 0, 255).astype(np.uint8)
      Image.fromarray(pixels).save(root / f"class_{c:02d}" / f"{i}.jpg")
  workdir = tmp_path_factory.mktemp("run")
  trainer.train_and_evaluate(tiny_config(root), str(workdir))
  return workdir


def tiny_config(root):
  """tests/training/test_trainer.py's tiny run: a vit_tiny, 16-d, PFML with 2 proxies/class."""
  config = default_config.get_config()
  config.data.name = "image_folder"
  config.data.root = str(root)
  config.eval.protocol = "validated"
  config.data.val_classes = 2
  config.data.classes_per_batch = 4
  config.data.images_per_class = 2
  config.data.workers = 0
  config.model.backbone = "vit_tiny"
  config.model.embedding_dim = 16
  config.model.dtype = "float32"
  config.model.frozen_bn = False
  config.loss.pfml.proxies_per_class = 2
  config.optim.learning_rate = 1e-3
  config.optim.warmup_epochs = 1
  config.steps = 6
  config.eval.every_epochs = 1  # 3 steps per epoch: validation at steps 3 and 6
  config.eval.batch_size = 16
  config.eval.backend = "jax"
  config.checkpoint.every_steps = 2
  config.log_every_steps = 2
  config.mesh.data = 1
  return config
