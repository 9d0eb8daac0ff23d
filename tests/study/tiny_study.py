"""The tiny image-folder study setup the study tests share: noisy colour classes, a 2-step
ViT config, and the study command line run as a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]

TINY_CONFIG = '''
from pfml_jax import default_config


def get_config():
  config = default_config.get_config()
  config.data.name = "image_folder"
  config.data.root = {root!r}
  config.data.classes_per_batch = 4
  config.data.images_per_class = 2
  config.data.workers = 0
  config.model.backbone = "vit_tiny"
  config.model.embedding_dim = 8
  config.model.dtype = "float32"
  config.model.frozen_bn = False
  config.loss.pfml.proxies_per_class = 1
  config.optim.warmup_epochs = 0
  config.steps = 2
  config.eval.batch_size = 32
  config.eval.backend = "jax"
  config.checkpoint.every_steps = 1
  config.log_every_steps = 1
  config.mesh.data = 1
  return config
'''


def write_tiny_setup(base: Path, classes: int = 12) -> Path:
  """``classes`` noisy colour classes x 5 images below ``base/images`` (the first half
  train) and ``base/tiny.py``, the config reading them; returns the config's path."""
  rng = np.random.default_rng(0)
  for c in range(classes):
    (base / "images" / f"class_{c:02d}").mkdir(parents=True)
    colour = rng.integers(0, 256, 3)
    for i in range(5):
      pixels = np.clip(colour + rng.normal(0, 110, (32, 32, 3)), 0, 255).astype(np.uint8)
      Image.fromarray(pixels).save(base / "images" / f"class_{c:02d}" / f"{i}.png")
  config = base / "tiny.py"
  config.write_text(TINY_CONFIG.format(root=str(base / "images")))
  return config


def study_environment() -> dict[str, str]:
  return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO),
              XLA_FLAGS="--xla_backend_optimization_level=0")  # one CPU device per run


def study_cli(*args):
  return subprocess.run([sys.executable, "-m", "pfml_jax.study", *args], cwd=REPO,
                        env=study_environment(), capture_output=True, text=True, timeout=600)
