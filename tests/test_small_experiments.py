"""The small-scale recipes, loaded through the real config flag as users pass them."""

import os
from pathlib import Path

import pytest

from pfml_jax import experiments, small_experiments
from pfml_jax.experiments import RECIPES
from pfml_jax.losses import LOSSES
from pfml_jax.settings import validation
from pfml_jax.training.optimizer import learning_rate_schedule
from tests.config_flag import load

SMALL = Path(__file__).parents[1] / "configs" / "small"


@pytest.mark.parametrize("regime", small_experiments.REGIMES)
def test_every_recipe_of_both_regimes_is_valid(regime):
  for recipe in RECIPES:
    config = load(f"{SMALL / regime}.py:{recipe}")
    validation.validate(config)
    assert config.recipe == recipe and config.data.name == "demo"
    assert config.loss.name == (recipe if recipe in LOSSES else "pfml")
    assert config.eval.protocol == "validated" and config.model.backbone == "resnet50_tiny"
    assert config.epochs == small_experiments.EPOCHS
    assert config.data.val_classes >= 20 and config.data.split_per_seed
    assert not config.data.flip  # glyphs: a mirror image is another character


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_shrunk_recipe_keeps_its_backbone_rate_at_every_fraction_of_the_run(recipe):
  """Warm-up and decays scale together: at each fraction of the run the backbone's rate is the
  full recipe's (zero in the warm-up, then each halving at its place)."""
  full = experiments.experiment("cub200", "resnet50", recipe)
  small = load(f"{SMALL}/pretrained.py:{recipe}")
  steps_per_epoch = 600  # fine enough that rounding epochs to steps moves no boundary
  rates = []
  for config in (full, small):
    total = config.epochs * steps_per_epoch
    schedule = learning_rate_schedule(config.optim, "backbone", total, steps_per_epoch)
    rates.append([float(schedule(int((k + 0.5) / 240 * total))) for k in range(240)])
  assert rates[1] == pytest.approx(rates[0], rel=1e-6)


def test_pretrained_regime_is_the_papers_fine_tuning_on_the_shipped_weights():
  for recipe in RECIPES:
    config = load(f"{SMALL}/pretrained.py:{recipe}")
    assert os.path.isfile(config.model.pretrained)
    assert config.model.frozen_bn
    full = experiments.experiment("cub200", "resnet50", recipe)
    assert config.optim.proxy_lr_mult == full.optim.proxy_lr_mult  # the recipe's own
    assert config.optim.warmup_epochs == pytest.approx(
        full.optim.warmup_epochs * small_experiments.EPOCHS / full.epochs)
  pfml = load(f"{SMALL}/pretrained.py")
  assert (pfml.loss.pfml.delta_att, pfml.loss.pfml.proxies_per_class) == (0.2, 15)  # [paper]


def test_scratch_regime_trains_everything_from_random_init():
  for recipe in RECIPES:
    config = load(f"{SMALL}/scratch.py:{recipe}")
    assert config.model.pretrained == "" and not config.model.frozen_bn
    assert config.optim.warmup_epochs == 0
  pfml = load(f"{SMALL}/scratch.py")
  # Every loss keeps its published values, PFML's field too [paper]
  assert (pfml.loss.pfml.delta_att, pfml.loss.pfml.delta_rep) == (0.2, 0.2)
  assert pfml.loss.pfml.proxies_per_class == 15


def test_baselines_keep_their_recipe_with_the_schedule_scaled():
  """Proxy Anchor keeps PA's sampler, pooling, clipping and its eleven StepLR halvings."""
  config = load(f"{SMALL}/pretrained.py:proxy_anchor")
  assert config.data.sampler == "random" and config.model.pooling == "avg+max"
  assert (config.optim.clip, config.optim.clip_threshold) == ("value", 10.0)
  assert len(config.optim.step_epochs) == 11
  assert config.optim.warmup_epochs == pytest.approx(5 * small_experiments.EPOCHS / 60)
  assert config.optim.step_epochs[0] == pytest.approx(5 * small_experiments.EPOCHS / 60)


def test_image_folder_override_and_unknown_regime():
  config = load(f"{SMALL}/pretrained.py:triplet", "--config.data.name=image_folder",
                "--config.data.root=/data/folder")
  assert (config.data.name, config.data.root) == ("image_folder", "/data/folder")
  with pytest.raises(ValueError, match="Unknown regime 'finetune'"):
    small_experiments.small_experiment("finetune")


def _flat(config, prefix=""):
  """{dotted field: value} of a config."""
  items = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      items.update(_flat(value, f"{prefix}{key}."))
    else:
      items[f"{prefix}{key}"] = value
  return items


@pytest.mark.parametrize("regime", small_experiments.REGIMES)
def test_the_shared_setup_changes_only_the_loss(regime):
  """Every loss gets the same setup, field for field; only loss.name differs."""
  configs = {loss: load(f"{SMALL}/shared_{regime}.py:{loss}") for loss in LOSSES}
  reference = _flat(configs["pfml"])
  for loss, config in configs.items():
    validation.validate(config)
    assert config.loss.name == loss
    differing = {k for k, v in _flat(config).items() if reference[k] != v}
    assert differing <= {"loss.name"}, differing
  config = configs["pfml"]
  assert config.data.val_classes >= 20 and config.data.split_per_seed
  assert not config.data.flip  # glyphs: a mirror image is another character
  assert config.data.sampler == "class_balanced" and config.data.images_per_class == 4
  assert (os.path.isfile(config.model.pretrained) if regime == "pretrained" else
          config.model.pretrained == "")


@pytest.mark.parametrize("regime", small_experiments.REGIMES)
def test_every_recipes_batch_fits_the_demo_training_split(regime):
  """Random-sampler recipes draw 120 images, not 120 classes; class-balanced ones draw classes,
  and more than the split holds is refused."""
  train_classes = 76 - small_experiments.VAL_CLASSES  # the demo set's training classes
  for recipe in RECIPES:
    validation.validate_training_split(load(f"{SMALL}/{regime}.py:{recipe}"), train_classes)
  balanced = load(f"{SMALL}/{regime}.py:triplet")
  assert balanced.data.sampler == "class_balanced"
  with pytest.raises(ValueError, match="classes per batch, but the training split has 20"):
    validation.validate_training_split(balanced, 20)
