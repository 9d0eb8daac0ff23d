"""The ``pfml_jax.main`` command line of each run of a study, on a given site.

A site is where the study runs: its data and weights folders and any extra
``--config.<field>=<value>`` flags for every run (they do not change the folder names).
"""

import dataclasses
import functools
from pathlib import Path

from pfml_jax.config_files import load_config
from pfml_jax.study.grid import Run
from pfml_jax.user_errors import UserInputError

# Dataset folders below --data_root by the config's data.name, as Proxy Anchor's code names
# them [PA: dataset/*.py].
DATASET_FOLDERS = {"cub200": "CUB_200_2011", "cars196": "cars196",
                   "sop": "Stanford_Online_Products"}
# Weight files below --weights_dir by the config's model.backbone, as the export commands of
# docs/training.md name them.
WEIGHT_FILES = {"resnet50": "resnet50.safetensors", "bninception": "bninception.safetensors",
                "vit_s16": "vit_s16.safetensors", "dino_vits16": "dino_vits16.safetensors"}
# The paper's config names, configs/<dataset>_<backbone>.py: how tables label their cells.
PAPER_DATASETS = ("cub", "cars", "sop")
PAPER_BACKBONES = ("resnet50", "bninception", "vit", "dino")


@dataclasses.dataclass(frozen=True)
class Site:
  """Where runs find their inputs.

  Attributes:
    data_root: for a config on CUB, Cars or SOP (its resolved data.name), the folder holding
      ``CUB_200_2011/``, ``cars196/`` and ``Stanford_Online_Products/``; for any other
      dataset, the dataset root itself ("" = the config's own).
    weights_dir: the folder of the exported ``<backbone>.safetensors`` ("" = the config's own).
    extra: more ``--config.<field>=<value>`` flags, appended to every run.
  """
  data_root: str = ""
  weights_dir: str = ""
  extra: tuple[str, ...] = ()


def paper_setting(stem: str) -> tuple[str, str] | None:
  """``(dataset, backbone)`` of a paper config name such as ``cub_resnet50`` (a table's
  labels), else None."""
  dataset, _, backbone = stem.partition("_")
  if dataset in PAPER_DATASETS and backbone in PAPER_BACKBONES:
    return dataset, backbone
  return None


def join(base: str | Path, name: str) -> str:
  """``base/name`` as text: keeps URLs such as ``gs://bucket`` intact, as paths do not."""
  return f"{str(base).rstrip('/')}/{name}"


def run_folder(workdir: str | Path, run: Run) -> str:
  """The run's workdir below the study's."""
  return join(workdir, run.folder)


def run_arguments(run: Run, workdir: str | Path, site: Site = Site()) -> list[str]:
  """The flags of ``python -m pfml_jax.main`` for ``run`` in the study workdir ``workdir``."""
  arguments = run.cell.arguments() + [f"--workdir={run_folder(workdir, run)}",
                                      f"--config.seed={run.seed}"]
  if not (site.data_root or site.weights_dir):
    return arguments + list(site.extra)
  config = _cell_config(run.cell.config, run.cell.overrides)
  if site.data_root:
    folder = DATASET_FOLDERS.get(config.data.name)
    arguments.append(f"--config.data.root="
                     f"{join(site.data_root, folder) if folder else site.data_root}")
  if site.weights_dir:
    if config.model.backbone not in WEIGHT_FILES:
      raise UserInputError(
          f"--weights_dir: {run.cell.config_file} trains a {config.model.backbone}, which has "
          f"no exported weights file ({sorted(WEIGHT_FILES)}); pass "
          "--config.model.pretrained=FILE instead.")
    arguments.append("--config.model.pretrained="
                     f"{join(site.weights_dir, WEIGHT_FILES[config.model.backbone])}")
  return arguments + list(site.extra)


@functools.lru_cache(maxsize=None)
def _cell_config(config: str, overrides: tuple[tuple[str, object], ...]):
  """A cell's resolved config, loaded once for all of its seeds."""
  return load_config(config, dict(overrides))


def main_command(run: Run, workdir: str | Path, site: Site = Site(),
                 python: str = "python") -> list[str]:
  """The whole command line of ``run``."""
  return [python, "-m", "pfml_jax.main", *run_arguments(run, workdir, site)]
