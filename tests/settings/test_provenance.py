"""The source of every config value, read from the comments of the lines that set it."""

import pytest

from pfml_jax.default_config import get_config
from pfml_jax.settings.provenance import config_sources, leaves, tag_of


@pytest.mark.parametrize("comment, tag", [
    ("# decoupled (AdamW) [paper: 5e-4 CUB, 1e-4 Cars]", "paper"),
    ("# AdamW base rate [paper supplement: 1e-4]", "supp"),
    ("# proxies at 1e-2 [supp]", "supp"),
    ("# P of the P x K class-balanced sampler [PA-style]", "PA"),
    ("# [HIST: --lr-hgnn-factor default 10]", "HIST"),
    ("# Linear(384, emb), orthogonal, zero bias [Hyp]", "Hyp"),
    ("# [conv]", "conv"),
    ("# [torchvision default] then [our choice: memory]", "ours"),
    ("# Our choice: False, a damaged dataset should be noticed.", "ours"),
    ("# a comment without a source", None),
    ("# [PAPER] is not a tag; [supplementary] is not either", None),
])
def test_tags(comment, tag):
  assert tag_of(comment) == tag


def test_cub_resnet50_sources_and_an_override():
  sources = config_sources("configs/cub_resnet50.py", {"optim.learning_rate": 3e-5})
  assert sources["optim.weight_decay"] == "paper"  # default_config.py: [paper: 5e-4 CUB, ...]
  assert sources["model.pooling"] == "paper"  # experiments.py _cnn: [paper: GAP]
  assert sources["optim.proxy_lr_mult"] == "supp"  # experiments.py _cnn: [supp]
  assert sources["optim.learning_rate"] == "flag"
  assert sources["data.name"] == "pfml_jax/experiments.py"  # set there without a tag
  assert set(sources) == {field for field, _, _ in leaves(get_config())}


def test_a_recipe_after_the_colon_records_its_own_lines():
  sources = config_sources("configs/cub_resnet50.py:proxy_anchor")
  assert sources["optim.step_gamma"] == "PA"  # _pa_recipe: [PA README]
  assert sources["model.pooling"] == "PA"  # _pa_recipe overrides _cnn's [paper: GAP]
