"""Where ``--config=FILE[:RECIPE]`` files are: ``FILE`` as given (from the current folder), or
else, for ``configs/...``, the copy installed with the package (``pfml_jax.configs``, built
from the repository's ``configs/``: pyproject.toml), so the shipped configs work from any
folder once the package is installed."""

import importlib.util
from collections.abc import Mapping
from pathlib import Path, PurePath

SHIPPED_FOLDER = "configs"  # how commands and studies name the shipped configs


def shipped_configs() -> Path | None:
  """The folder of the configs installed with the package; None when it has none (a checkout
  used without installing)."""
  spec = importlib.util.find_spec("pfml_jax.configs")
  locations = list(spec.submodule_search_locations or []) if spec else []
  return Path(locations[0]) if locations else None


def config_file(config: str) -> str:
  """``config`` (``FILE[:RECIPE]``) with ``FILE`` found: unchanged if it exists from here,
  else the installed copy of ``configs/<rest>`` when there is one (unchanged otherwise, so the
  error names the path the user gave)."""
  file, sep, recipe = config.partition(":")
  parts = PurePath(file).parts
  if Path(file).exists() or parts[:1] != (SHIPPED_FOLDER,):
    return config
  shipped = shipped_configs()
  if shipped is None:
    return config
  candidate = shipped.joinpath(*parts[1:])
  return str(candidate) + sep + recipe if candidate.is_file() else config


def load_config(config: str, overrides: Mapping[str, object] | None = None):
  """The ConfigDict of ``FILE[:RECIPE]`` (``get_config(RECIPE)``, or ``get_config()``), as
  ``--config`` loads it, with ``overrides`` (dotted field -> value) applied as
  ``--config.<field>=<value>`` would."""
  file, _, recipe = config_file(config).partition(":")
  spec = importlib.util.spec_from_file_location(f"_config_{Path(file).stem}", file)
  if spec is None:
    raise FileNotFoundError(f"{file}: not a Python config file")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  loaded = module.get_config(recipe) if recipe else module.get_config()
  loaded.update_from_flattened_dict(dict(overrides or {}))
  return loaded
