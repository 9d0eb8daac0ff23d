"""The ``pfml_jax.main`` command line of each run of a study, on a given site.

A site is where the study runs: its data and weights folders and any extra
``--config.<field>=<value>`` flags for every run (they do not change the folder names).
"""

import dataclasses
from pathlib import Path

from pfml_jax.study.grid import Run
from pfml_jax.user_errors import UserInputError

# Dataset folders below --data_root, as Proxy Anchor's code names them [PA: dataset/*.py].
DATASET_FOLDERS = {"cub": "CUB_200_2011", "cars": "cars196", "sop": "Stanford_Online_Products"}
# Weight files below --weights_dir, as the export commands of docs/training.md name them.
WEIGHT_FILES = {"resnet50": "resnet50.safetensors", "bninception": "bninception.safetensors",
                "vit": "vit_s16.safetensors", "dino": "dino_vits16.safetensors"}


@dataclasses.dataclass(frozen=True)
class Site:
  """Where runs find their inputs.

  Attributes:
    data_root: for the paper's ``<dataset>_<backbone>`` configs, the folder holding
      ``CUB_200_2011/``, ``cars196/`` and ``Stanford_Online_Products/``; for any other config,
      the dataset root itself ("" = the config's own).
    weights_dir: the folder of the exported ``<backbone>.safetensors`` ("" = the config's own).
    extra: more ``--config.<field>=<value>`` flags, appended to every run.
  """
  data_root: str = ""
  weights_dir: str = ""
  extra: tuple[str, ...] = ()


def paper_setting(stem: str) -> tuple[str, str] | None:
  """``(dataset, backbone)`` of a paper config name such as ``cub_resnet50``, else None."""
  dataset, _, backbone = stem.partition("_")
  if dataset in DATASET_FOLDERS and backbone in WEIGHT_FILES:
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
  setting = paper_setting(run.cell.stem)
  arguments = run.cell.arguments() + [f"--workdir={run_folder(workdir, run)}",
                                      f"--config.seed={run.seed}"]
  if site.data_root:
    root = join(site.data_root, DATASET_FOLDERS[setting[0]]) if setting else site.data_root
    arguments.append(f"--config.data.root={root}")
  if site.weights_dir:
    if setting is None:
      raise UserInputError(
          f"--weights_dir: {run.cell.config_file} is none of the paper's <dataset>_<backbone> "
          "configs, so no weights file is implied; pass --config.model.pretrained=FILE instead.")
    arguments.append(
        f"--config.model.pretrained={join(site.weights_dir, WEIGHT_FILES[setting[1]])}")
  return arguments + list(site.extra)


def main_command(run: Run, workdir: str | Path, site: Site = Site(),
                 python: str = "python") -> list[str]:
  """The whole command line of ``run``."""
  return [python, "-m", "pfml_jax.main", *run_arguments(run, workdir, site)]
