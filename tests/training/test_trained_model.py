"""A checkpoint's recorded config is read over today's defaults."""

from pfml_jax import default_config
from pfml_jax.evaluation.trained_model import recorded_config


def test_fields_added_since_a_checkpoint_take_their_defaults():
  saved = default_config.get_config().to_dict()
  del saved["model"]["embedding_norm"], saved["plots"], saved["loss"]["hist"]  # newer fields
  saved["model"]["backbone"], saved["loss"]["pfml"]["alpha"] = "vit_tiny", 5.0
  config = recorded_config(saved)
  defaults = default_config.get_config()
  assert config.model.embedding_norm == defaults.model.embedding_norm == "l2"
  assert config.plots == defaults.plots and "hist" in config.loss
  assert config.model.backbone == "vit_tiny" and config.loss.pfml.alpha == 5.0
