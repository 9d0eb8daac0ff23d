"""The tiny image-folder study setup the study tests share: noisy colour classes, a 2-step
config file, and the study command line run as a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]

# The trainer tests' tiny config (a 2-layer ViT on colour classes), as the study tests run it:
# the paper protocol (a study picks validated by a flag), 2 steps, a checkpoint every step.
TINY_CONFIG = """from tests.tiny_run import tiny_config


def get_config():
  return tiny_config({root!r}, **{overrides!r})
"""
STUDY_OVERRIDES = {"eval.protocol": "paper", "steps": 2, "checkpoint.every_steps": 1,
                   "log_every_steps": 1, "model.embedding_dim": 8,
                   "loss.pfml.proxies_per_class": 1, "optim.warmup_epochs": 0,
                   "optim.learning_rate": 1e-4, "optim.eps": 1e-8, "eval.batch_size": 32}


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
  config.write_text(TINY_CONFIG.format(root=str(base / "images"), overrides=STUDY_OVERRIDES))
  return config


def study_environment() -> dict[str, str]:
  return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO),
              XLA_FLAGS="--xla_backend_optimization_level=0")  # one CPU device per run


def study_cli(*args):
  return subprocess.run([sys.executable, "-m", "pfml_jax.study", *args], cwd=REPO,
                        env=study_environment(), capture_output=True, text=True, timeout=600)
