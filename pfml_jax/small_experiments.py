"""Small-scale recipes: every loss's paper-scale recipe shrunk to a ~1-minute CPU run.

``configs/small/{scratch,pretrained}.py`` call ``small_experiment(regime, recipe)``; the recipe
is the part after ``:`` (default ``pfml``; the names of ``pfml_jax/experiments.py``). They run
on the shipped demo set by default and on any image folder with
``--config.data.name=image_folder --config.data.root=DIR``.

How a recipe is scaled down (our choice, so that a reproduction study of ~100 runs fits in two
CPU hours): start from the loss's own CUB-200 ResNet-50 recipe (``experiments.experiment``:
its loss settings, sampler and batch size, pooling, head init, optimizer, rates, weight decay,
clipping, schedule shape); CUB because the demo set is CUB-like (tens of classes of tens of
images). Then only the scale changes: the tiny ResNet at 64 px with a 64-d embedding
(``configs/demo.py``), ``EPOCHS`` epochs instead of the recipe's, the step schedule's decay
epochs scaled by the same factor (PA's eleven halvings stay eleven), and the validated
protocol (checkpoint chosen on held-out training classes, test once at the end).

Regimes:
  pretrained: the paper's fine-tuning recipe on the shipped glyph-pretrained backbone
    (``data/demo_assets/GLYPH_BACKBONE.md``: characters disjoint from the demo classes):
    BatchNorm frozen, 1 warm-up epoch with the backbone frozen, proxies at x100, the recipe's
    rates (AdamW 1e-4, as the paper's supplement and Proxy Anchor).
  scratch: as ``configs/demo.py``: random init, BatchNorm trained, no warm-up (nothing to
    protect), base rate 2e-3 (the recipe's multipliers kept); PFML's field is wider
    (``SCRATCH_DELTA``), chosen on the validation classes by the study
    ``small_scratch_tuning`` (delta 0.2-0.8 x M 2, 15; docs/reproduction.md).
"""

import os

import ml_collections

from pfml_jax import experiments
from pfml_jax.user_errors import ConfigError

REGIMES = ("scratch", "pretrained")
GLYPH_BACKBONE = os.path.join(os.path.dirname(__file__), "data", "demo_assets",
                              "glyph_backbone.safetensors")
EPOCHS = 8  # about 1 minute per run on a 2-core CPU (docs/configs.md lists measured runs)
VALIDATIONS = 2  # validation passes per run: at half-way and at the end
# From scratch PFML's delta_att = delta_rep: the best mean validation Recall@1 of the study
# small_scratch_tuning, delta 0.2-0.8 x M 2, 15: 83.6 +- 1.7 at M = 15 (0.5: 83.3, 0.7: 81.2).
SCRATCH_DELTA = 0.6


def small_experiment(regime: str, recipe: str = "pfml") -> ml_collections.ConfigDict:
  """The small-scale config of ``recipe`` in ``regime`` (see the module docstring)."""
  if regime not in REGIMES:
    raise ConfigError(f"Unknown regime {regime!r}; choose one of {list(REGIMES)}.")
  config = experiments.experiment("cub200", "resnet50", recipe or "pfml")
  full_epochs = config.epochs
  config.data.name = "demo"
  config.eval.protocol = "validated"
  config.data.val_classes = 8  # of the demo's 76 training classes [configs/demo.py]
  # Glyphs are small and placed at random: smaller crops can hold no ink [configs/demo.py].
  config.data.crop_scale = (0.8, 1.0)
  config.data.workers = 0
  config.model.backbone = "resnet50_tiny"
  config.model.embedding_dim = 64
  config.model.dtype = "float32"  # bfloat16 is slow on CPUs
  config.epochs = EPOCHS
  config.optim.step_epochs = tuple(e * EPOCHS / full_epochs for e in config.optim.step_epochs)
  config.eval.every_epochs = max(1, EPOCHS // VALIDATIONS)
  config.eval.backend = "jax"
  config.checkpoint.every_steps = 10**6  # saves at evaluations and at the end only
  config.log_every_steps = 20
  # A study runs ~100 of these: pictures per run would cost more than the run's evaluation
  # [our choice]; --config.plots=True draws them.
  config.plots = False
  if regime == "pretrained":
    config.model.pretrained = GLYPH_BACKBONE
    config.model.frozen_bn = True  # [paper: BN frozen on CUB/Cars]
    config.optim.warmup_epochs = 1  # [paper: 1 warm-up epoch]
    config.optim.proxy_lr_mult = 100.0  # [paper, PA]
  else:
    config.model.frozen_bn = False
    config.optim.warmup_epochs = 0
    config.optim.learning_rate = 2e-3  # [configs/demo.py: from scratch]
    if config.loss.name == "pfml":
      # [validation classes: study small_scratch_tuning] with the recipe's M = 15 [paper]
      config.loss.pfml.delta_att = config.loss.pfml.delta_rep = SCRATCH_DELTA
  return config
