"""A config file read as ``--config`` reads it: ``FILE`` or ``FILE:ARGUMENT``."""

import importlib.util
from collections.abc import Mapping

import ml_collections


def load_config_file(argument: str, overrides: Mapping[str, object] | None = None
                     ) -> ml_collections.ConfigDict:
  """``get_config()`` of ``FILE`` (``get_config(ARGUMENT)`` of ``FILE:ARGUMENT``), with the
  ``overrides`` (dotted field -> value) applied as ``--config.<field>=value`` would."""
  path, colon, config_argument = argument.partition(":")
  spec = importlib.util.spec_from_file_location("config_file", path)
  if spec is None:
    raise FileNotFoundError(f"{path}: not a Python config file")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(config_argument) if colon else module.get_config()
  config.update_from_flattened_dict(dict(overrides or {}))
  return config
