"""The small-scale recipes, loaded through the real config flag as users pass them."""

import os
from pathlib import Path

import pytest

from pfml_jax import small_experiments
from pfml_jax.experiments import RECIPES
from pfml_jax.losses import LOSSES
from pfml_jax.settings import validation
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


def test_pretrained_regime_is_the_papers_fine_tuning_on_the_shipped_weights():
  for recipe in RECIPES:
    config = load(f"{SMALL}/pretrained.py:{recipe}")
    assert os.path.isfile(config.model.pretrained)
    assert config.model.frozen_bn and config.optim.warmup_epochs == 1
    assert config.optim.proxy_lr_mult == 100.0
  pfml = load(f"{SMALL}/pretrained.py")
  assert (pfml.loss.pfml.delta_att, pfml.loss.pfml.proxies_per_class) == (0.2, 15)  # [paper]


def test_scratch_regime_trains_everything_from_random_init():
  for recipe in RECIPES:
    config = load(f"{SMALL}/scratch.py:{recipe}")
    assert config.model.pretrained == "" and not config.model.frozen_bn
    assert config.optim.warmup_epochs == 0
  pfml = load(f"{SMALL}/scratch.py")
  assert pfml.loss.pfml.delta_att == pfml.loss.pfml.delta_rep == small_experiments.SCRATCH_DELTA
  assert pfml.loss.pfml.proxies_per_class == 15  # [paper], kept: the validation choice


def test_baselines_keep_their_recipe_with_the_schedule_scaled():
  """Proxy Anchor keeps PA's sampler, pooling, clipping and its eleven StepLR halvings."""
  config = load(f"{SMALL}/pretrained.py:proxy_anchor")
  assert config.data.sampler == "random" and config.model.pooling == "avg+max"
  assert (config.optim.clip, config.optim.clip_threshold) == ("value", 10.0)
  assert len(config.optim.step_epochs) == 11
  assert config.optim.step_epochs[0] == pytest.approx(5 * small_experiments.EPOCHS / 60)


def test_image_folder_override_and_unknown_regime():
  config = load(f"{SMALL}/pretrained.py:triplet", "--config.data.name=image_folder",
                "--config.data.root=/data/folder")
  assert (config.data.name, config.data.root) == ("image_folder", "/data/folder")
  with pytest.raises(ValueError, match="Unknown regime 'finetune'"):
    small_experiments.small_experiment("finetune")
