"""The paper configs and recipes, loaded through the real config flag as users pass them."""

from pathlib import Path

import pytest

from pfml_jax.experiments import RECIPES
from pfml_jax.losses import LOSSES
from pfml_jax.settings import validation
from tests.config_flag import load

CONFIG_DIR = Path(__file__).parents[1] / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("[a-z]*_*.py"))


def test_twelve_paper_configs_times_every_recipe_are_valid():
  assert len(CONFIGS) == 12
  for path in CONFIGS:
    for recipe in RECIPES:
      config = load(f"{path}:{recipe}")
      validation.validate(config)
      assert config.recipe == recipe
      assert config.loss.name == (recipe if recipe in LOSSES else "pfml")


def test_paper_protocol_is_the_default_of_every_paper_config():
  for path in CONFIGS:
    config = load(str(path))
    assert config.eval.protocol == "paper" and config.recipe == "pfml"
    assert config.loss.name == "pfml"
    assert dict(config.loss.pfml) == dict(
        alpha=3.0, delta_att=0.2, delta_rep=0.2, method="auto", normalize_proxies=True,
        proxy_self_attraction=True,
        proxies_per_class=2 if path.name.startswith("sop") else 15)


def test_naming_a_loss_gives_its_registry_defaults_and_explicit_values_win():
  config = load(str(CONFIGS[0]), "--config.loss.name=proxy_anchor")
  assert dict(config.loss.proxy_anchor) == dict(alpha=32.0, margin=0.1, proxies_per_class=1)
  sop = [p for p in CONFIGS if p.name.startswith("sop")][0]
  config = load(str(sop), "--config.loss.name=proxy_nca",
                "--config.loss.proxy_nca.softmax_scale=16")
  assert config.loss.proxy_nca.proxies_per_class == 1  # not PFML's SOP M = 2
  assert config.loss.proxy_nca.softmax_scale == 16


def test_proxy_anchor_recipe_is_its_reference_code():
  """Values of Proxy Anchor's train.py and README command (ResNet-50, CUB)."""
  config = load(f"{CONFIG_DIR}/cub_resnet50.py:proxy_anchor")
  assert config.model.pooling == "avg+max" and config.model.head_init == "kaiming_fan_out"
  assert config.data.sampler == "random"
  assert config.data.classes_per_batch * config.data.images_per_class == 120
  assert (config.optim.learning_rate, config.optim.proxy_lr_mult) == (1e-4, 100.0)
  assert (config.optim.clip, config.optim.clip_threshold) == ("value", 10.0)
  assert config.optim.warmup_epochs == 5 and config.optim.schedule == "step"
  assert config.optim.step_epochs == tuple(range(5, 60, 5)) and config.optim.step_gamma == 0.5
  assert config.epochs == 60 and config.eval.every_epochs == 1
  sop = load(f"{CONFIG_DIR}/sop_bninception.py:proxy_anchor")
  assert (sop.optim.learning_rate, sop.optim.step_gamma, sop.model.frozen_bn) == (6e-4, 0.25,
                                                                                   False)


@pytest.mark.parametrize("file, want", [
    # --lr, --lr-ds, --lr-hgnn-factor, --weight-decay, --lr-decay-step, --epochs, --tau,
    # --alpha of HIST's README command; BN frozen except on SOP (--bn-freeze 0).
    ("cub_resnet50", (1.2e-4, 1e-1, 5.0, 5e-5, 5, 40, 32.0, 1.1, True)),
    ("cars_resnet50", (1e-4, 1e-1, 10.0, 1e-4, 10, 50, 32.0, 0.9, True)),
    ("sop_resnet50", (1e-4, 1e-2, 10.0, 1e-4, 10, 60, 16.0, 2.0, False)),
])
def test_hist_recipe_is_its_reference_code(file, want):
  lr, lr_ds, hgnn_factor, weight_decay, decay_step, epochs, tau, alpha, frozen_bn = want
  config = load(f"{CONFIG_DIR}/{file}.py:hist")
  validation.validate(config)
  assert config.loss.name == "hist"
  assert (config.loss.hist.tau, config.loss.hist.alpha) == (tau, alpha)
  assert (config.loss.hist.lambda_s, config.loss.hist.hgnn_hidden) == (1.0, 512)
  assert config.optim.learning_rate == lr and config.optim.weight_decay == weight_decay
  assert config.optim.weight_decay_style == "coupled"  # torch Adam's weight_decay
  assert config.optim.learning_rate * config.optim.proxy_lr_mult == pytest.approx(lr_ds)
  assert config.optim.loss_params_lr_mult == hgnn_factor and config.optim.head_lr_mult == 1.0
  assert config.model.frozen_bn == frozen_bn
  assert config.model.pooling == "avg+max" and config.model.embedding_norm == "layer_norm"
  assert config.model.head_init == "kaiming_fan_out"
  assert config.data.sampler == "random"
  assert config.data.classes_per_batch * config.data.images_per_class == 32
  # One warm-up epoch before --epochs; StepLR counts the epochs after it.
  assert config.optim.warmup_epochs == 1 and config.epochs == 1 + epochs
  assert config.optim.schedule == "step" and config.optim.step_gamma == 0.5
  assert config.optim.step_epochs == tuple(range(1 + decay_step, 1 + epochs, decay_step))
  assert config.optim.clip == "none" and config.eval.every_epochs == 1


def test_other_recipes_keep_unit_norm_embeddings_and_decoupled_decay():
  for recipe in ("pfml", "proxy_anchor"):
    config = load(f"{CONFIG_DIR}/cub_resnet50.py:{recipe}")
    assert config.model.embedding_norm == "l2"
    assert config.optim.weight_decay_style == "decoupled"
  assert load(f"{CONFIG_DIR}/cub_vit.py:hist").model.embedding_norm == "l2"


def test_tuple_loss_recipes_sample_class_balanced_batches():
  for loss in ("triplet", "multi_similarity"):
    config = load(f"{CONFIG_DIR}/cars_resnet50.py:{loss}")
    assert config.data.sampler == "class_balanced" and config.data.images_per_class >= 2


def test_learning_rate_recipes_of_the_paper():
  supplement = load(f"{CONFIG_DIR}/cars_resnet50.py")
  main_text = load(f"{CONFIG_DIR}/cars_resnet50.py:pfml_main_text")
  assert supplement.optim.learning_rate * supplement.optim.proxy_lr_mult == pytest.approx(1e-2)
  assert main_text.optim.learning_rate == 5e-4 and main_text.optim.proxy_lr_mult == 100.0


def test_vit_recipes_follow_hyp():
  dino = load(f"{CONFIG_DIR}/cub_dino.py")
  vit = load(f"{CONFIG_DIR}/sop_vit.py")
  assert dino.optim.learning_rate == 1e-5 and vit.optim.learning_rate == 3e-5
  for config in (dino, vit):
    assert (config.optim.clip, config.optim.clip_threshold) == ("norm", 3.0)
    assert config.optim.frozen == "model/backbone/patch_embed"
    assert config.model.head_init == "orthogonal" and config.optim.weight_decay == 0.01
    assert tuple(config.data.crop_scale) == (0.2, 1.0)
  assert dino.model.eval_resize == 256 and vit.model.eval_resize == 224
  assert dino.data.images_per_class == 9 and vit.data.images_per_class == 2


def test_unknown_recipe_is_named():
  with pytest.raises(Exception, match="Unknown recipe 'proxy_ancor'"):
    load(f"{CONFIG_DIR}/cub_resnet50.py:proxy_ancor")
