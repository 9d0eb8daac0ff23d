"""A study of tuned settings: every loss at the setting its ``study tune`` search chose.

``--tuned=DIR`` names a folder of searches, one per loss (``DIR/<loss>/chosen.json``, as
``study tune --workdir=DIR/<loss>`` writes it), or a comma-separated list of searches and such
folders (``--tuned=DIR/pfml,DIR/hist``). Each search becomes a cell, ``method=<loss>``, with
the chosen overrides; ``--sweep`` crosses every cell with more values (e.g. label noise), and
``--floor`` adds the shared setup's step-0 model. The chosen settings are read when the study
is made, and its manifest records them.
"""

import json
from pathlib import Path
from typing import Sequence

from pfml_jax.study.grid import Cell, Study, Value, sweep_study
from pfml_jax.study.tune import CHOSEN
from pfml_jax.user_errors import UserInputError


def chosen_settings(tuned: str) -> list[dict]:
  """The ``chosen.json`` of each search ``tuned`` names (see the module docstring)."""
  files = []
  for part in tuned.split(","):
    folder = Path(part)
    found = [folder / CHOSEN] if (folder / CHOSEN).exists() else sorted(folder.glob(f"*/{CHOSEN}"))
    if not found:
      raise UserInputError(f"--tuned={tuned}: {folder} is no search and holds no <loss>/"
                           f"{CHOSEN}; run `study tune --workdir={folder}/<loss>` for each "
                           "loss first.")
    files += found
  return [json.loads(file.read_text()) for file in files]


def tuned_study(name: str, tuned: str, sweeps: Sequence[tuple[str, Sequence[Value]]],
                seeds: Sequence[int]) -> Study:
  """One cell per search ``tuned`` names (times the ``sweeps``), at ``seeds``."""
  chosen = chosen_settings(tuned)
  configs = {setting["config"] for setting in chosen}
  if len(configs) != 1:
    raise UserInputError(f"--tuned={tuned}: its searches tuned different setups "
                         f"({', '.join(sorted(configs))}); a fair comparison shares one.")
  grids = [[Cell(cell.config, cell.overrides, (("method", setting["loss"]),) + cell.values)
            for cell in sweep_study(name, [setting["config"]], sweeps, seeds,
                                    tuple(setting["overrides"].items())).cells]
           for setting in chosen]
  # Sweep-major: every loss at the first value before any at the second, so that a study cut
  # short has whole rows to compare.
  cells = [cell for row in zip(*grids) for cell in row]
  return Study(name, tuple(cells), tuple(seeds),
               f"{name}: every loss at its tuned setting ({configs.pop()})",
               notes=tuple(f"{s['loss']}: chosen on validation, trial {s['trial']} of "
                           f"{s['trials']} ({s['metric']} {s['value']:.2f})" for s in chosen))
