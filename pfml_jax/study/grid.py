"""A study: a named grid of config overrides x seeds over config files; its cells and runs.

A cell is one config file (with an optional ``:recipe``), the overrides that make it, and the
values that tell it apart from the other cells of its study (e.g. ``alpha=3``). Each (cell,
seed) is one ordinary training run in ``<study workdir>/<cell name>/seed_<seed>``.
"""

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any, Sequence

from pfml_jax.user_errors import ConfigError

Value = int | float | str | bool
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def format_value(value: Value) -> str:
  """``value`` as a ``--config.<field>=`` argument (booleans lower-case, as absl reads them)."""
  if isinstance(value, bool):
    return str(value).lower()
  return str(value)


def parse_value(text: str) -> Value:
  """A command-line value: an int, else a float, else the string itself."""
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return text


@dataclasses.dataclass(frozen=True)
class Cell:
  """One point of the grid.

  Attributes:
    config: the config file as ``pfml_jax.main --config`` takes it, e.g.
      ``configs/cub_resnet50.py:proxy_anchor``.
    overrides: ``(field, value)`` pairs passed as ``--config.<field>=<value>``.
    values: ``(label, value)`` pairs naming what this cell varies (table rows, plot x).
    paper: ``(metric, value in %)`` the paper reports for this cell, if any.
  """
  config: str
  overrides: tuple[tuple[str, Value], ...] = ()
  values: tuple[tuple[str, Value], ...] = ()
  paper: tuple[tuple[str, float], ...] = ()

  @property
  def config_file(self) -> str:
    return self.config.partition(":")[0]

  @property
  def recipe(self) -> str:
    return self.config.partition(":")[2]

  @property
  def stem(self) -> str:
    return Path(self.config_file).stem

  @property
  def name(self) -> str:
    """The run folder's name: ``<config stem>[-<recipe>][-<label>_<value>...]``."""
    parts = [self.stem] + ([self.recipe] if self.recipe else [])
    parts += [f"{label}_{format_value(value)}" for label, value in self.values]
    return _UNSAFE.sub("_", "-".join(parts))

  def arguments(self) -> list[str]:
    """``--config=...`` and the override flags of ``pfml_jax.main`` (no workdir, no seed)."""
    return [f"--config={self.config}"] + [
        f"--config.{field}={format_value(value)}" for field, value in self.overrides]


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run: a cell at one seed."""
  cell: Cell
  seed: int

  @property
  def folder(self) -> str:
    """The run's folder relative to the study workdir."""
    return f"{self.cell.name}/seed_{self.seed}"


@dataclasses.dataclass(frozen=True)
class Study:
  """A named set of cells, each trained at every seed.

  Attributes:
    name: the study's name (``table1``, ``alpha``, ... or a custom one).
    cells: the grid's points, in table order.
    seeds: the seeds every cell runs with (``--config.seed``).
    description: one line for the tables' titles.
    sweep: the label of ``Cell.values`` a plot puts on its x axis ("" = no plot).
    notes: lines printed under the tables (sources of the paper values, omissions).
  """
  name: str
  cells: tuple[Cell, ...]
  seeds: tuple[int, ...]
  description: str = ""
  sweep: str = ""
  notes: tuple[str, ...] = ()

  def __post_init__(self):
    if not self.cells:
      raise ConfigError(f"Study {self.name!r} has no cells; give at least one config.")
    if not self.seeds or len(set(self.seeds)) != len(self.seeds):
      raise ConfigError(f"Study {self.name!r}: seeds must be distinct and at least one, got "
                        f"{list(self.seeds)} (e.g. --seeds=0,1,2).")
    names = [cell.name for cell in self.cells]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
      raise ConfigError(f"Study {self.name!r}: cells {duplicates} share a folder name; give "
                        "them different values (Cell.values).")

  def runs(self) -> list[Run]:
    """Every (cell, seed), cell-major: a cell's seeds are adjacent."""
    return [Run(cell, seed) for cell in self.cells for seed in self.seeds]

  def with_seeds(self, seeds: Sequence[int]) -> "Study":
    return dataclasses.replace(self, seeds=tuple(seeds))

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, record: dict[str, Any]) -> "Study":
    cells = tuple(Cell(cell["config"], *(tuple(tuple(pair) for pair in cell[key])
                                         for key in ("overrides", "values", "paper")))
                  for cell in record["cells"])
    return cls(record["name"], cells, tuple(record["seeds"]), record["description"],
               record["sweep"], tuple(record["notes"]))


def sweep_study(name: str, configs: Sequence[str], sweeps: Sequence[tuple[str, Sequence[Value]]],
                seeds: Sequence[int], fixed: Sequence[tuple[str, Value]] = ()) -> Study:
  """The full grid of ``configs`` x every combination of the ``(field, values)`` sweeps.

  A swept field's label is its last component (``loss.pfml.alpha`` -> ``alpha``), or the whole
  path where two swept fields share that last component. ``fixed`` overrides apply to every cell.
  """
  last = [field.rpartition(".")[2] for field, _ in sweeps]
  labels = [tail if last.count(tail) == 1 else field
            for tail, (field, _) in zip(last, sweeps)]
  cells = []
  for config in configs:
    for combination in itertools.product(*(values for _, values in sweeps)):
      fields = [field for field, _ in sweeps]
      cells.append(Cell(config, tuple(fixed) + tuple(zip(fields, combination)),
                        tuple(zip(labels, combination))))
  sweep = labels[0] if len(sweeps) == 1 else ""
  return Study(name, tuple(cells), tuple(seeds), f"{name}: {', '.join(configs)}", sweep)


# The step-0 floor of a table [issue 20: every table shows the untrained model; a cell below
# it failed training]. pfml_jax.main has no zero-step run, so the floor trains one step at
# zero backbone and head rates (AdamW's update and decay both scale with the rate: exactly
# zero) with BatchNorm statistics frozen: the embedding model stays as initialised (random, or
# pretrained with a fresh head) and goes through the same evaluation [our choice].
FLOOR = "floor"
FLOOR_OVERRIDES: tuple[tuple[str, Value], ...] = (
    ("steps", 1), ("optim.backbone_lr_mult", 0.0), ("optim.head_lr_mult", 0.0),
    ("model.frozen_bn", True))


def is_floor(cell: Cell) -> bool:
  return dict(cell.values).get("method") == FLOOR


def with_floor(study: Study) -> Study:
  """``study`` with a step-0 cell first for each of its config files (the file's own recipe;
  the cells' overrides do not apply, the site's ``--config.*`` flags do)."""
  files = dict.fromkeys(cell.config_file for cell in study.cells if not is_floor(cell))
  floors = tuple(Cell(file, FLOOR_OVERRIDES, (("method", FLOOR),)) for file in files)
  return dataclasses.replace(study, cells=floors + tuple(c for c in study.cells
                                                         if not is_floor(c)))

