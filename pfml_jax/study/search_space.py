"""What ``study tune`` searches for each loss: the one registry of its ranges and their sources.

Every loss gets the same shared dimensions (the learning rate, the schedule and, for a loss
with proxies, the proxy rate) plus its own hyperparameters, so that each has its own knobs
and the same optimisation knobs under one trial budget (after Musgrave et al., "A Metric
Learning Reality Check", ECCV 2020). A dimension sets one or more config fields to the value
the sampler draws.
"""

import dataclasses
from typing import Any

import optuna

from pfml_jax.losses import LOSSES
from pfml_jax.study.grid import Value
from pfml_jax.user_errors import UserInputError


@dataclasses.dataclass(frozen=True)
class Dimension:
  """One searched value.

  Attributes:
    name: the sampler's name of the value (stored with each trial).
    fields: the config fields it sets (several for a tied value, e.g. PFML's two radii).
    low, high: the range of a numeric value (inclusive).
    log: draw uniformly in log space.
    integer: draw an integer.
    choices: the values of a categorical dimension (then low/high are unused).
    source: where the range comes from.
  """
  name: str
  fields: tuple[str, ...]
  low: float = 0.0
  high: float = 0.0
  log: bool = False
  integer: bool = False
  choices: tuple[Value, ...] = ()
  source: str = ""

  def suggest(self, trial: optuna.Trial) -> Value:
    """The trial's value of this dimension (drawn by the study's sampler)."""
    if self.choices:
      return trial.suggest_categorical(self.name, self.choices)
    if self.integer:
      return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
    return trial.suggest_float(self.name, self.low, self.high, log=self.log)

  def describe(self) -> str:
    """The range as the docs write it, e.g. ``1e-05 .. 0.001 (log)``."""
    if self.choices:
      return " | ".join(str(c) for c in self.choices)
    return f"{self.low:g} .. {self.high:g}" + (" (log)" if self.log else "")


def _loss(loss: str, name: str, low: float, high: float, source: str, log: bool = False,
          integer: bool = False) -> Dimension:
  return Dimension(name, (f"loss.{loss}.{name}",), low, high, log, integer, source=source)


def learning_rate(base: float) -> Dimension:
  """The base rate, a decade either side of the setup's own ``base``."""
  return Dimension(
      "learning_rate", ("optim.learning_rate",), base / 10, base * 10, log=True,
      source="our choice: a decade either side of the setup's base rate (fine-tuning: the "
             "1e-4 of the paper and of Proxy Anchor's code, which also covers Hyp-DML's "
             "1e-5 / 3e-5; from scratch: configs/demo.py's 2e-3)")


PROXY_RATE = Dimension(
    "proxy_lr_mult", ("optim.proxy_lr_mult",), 10.0, 1000.0, log=True,
    source="our choice: a decade either side of Proxy Anchor's code's x100 (the paper's "
           "proxies also learn at 100x)")
SCHEDULE = Dimension(
    "schedule", ("optim.schedule",), choices=("constant", "cosine"),
    source="our choice: the paper states no schedule; 'step' needs decay epochs fitted to each "
           "run length, so it is left to the recipes")

# Each loss's own hyperparameters. Ranges bracket the loss's published default.
LOSS_DIMENSIONS: dict[str, tuple[Dimension, ...]] = {
    "pfml": (
        _loss("pfml", "alpha", 1.0, 6.0,
              "paper: the alpha ablation spans 0..6 (0 is no force, rejected)"),
        Dimension("delta", ("loss.pfml.delta_att", "loss.pfml.delta_rep"), 0.1, 0.8,
                  source="paper: delta_att = delta_rep, ablated over 0.10..0.35 on pretrained "
                         "backbones; up to 0.8, because from scratch the embeddings start in a "
                         "small cap (docs/reproduction.md)"),
        _loss("pfml", "proxies_per_class", 1, 20,
              "paper: the M ablation spans 0..20 (M = 0 is no proxy rate to tune)",
              integer=True)),
    "proxy_anchor": (
        _loss("proxy_anchor", "alpha", 8.0, 128.0,
              "our choice: a factor 4 either side of the paper's 32", log=True),
        _loss("proxy_anchor", "margin", 0.0, 0.3,
              "our choice: 0 to three times the paper's 0.1")),
    "proxy_nca": (
        _loss("proxy_nca", "softmax_scale", 4.0, 64.0,
              "our choice: a factor 8 below and 2 above the 32 of Proxy Anchor's code",
              log=True),),
    "multi_similarity": (
        _loss("multi_similarity", "alpha", 0.5, 8.0,
              "our choice: a factor 4 either side of the paper's 2", log=True),
        _loss("multi_similarity", "beta", 10.0, 100.0,
              "our choice: a factor 5 below and 2 above the paper's 50", log=True),
        _loss("multi_similarity", "base", 0.3, 0.8,
              "our choice: around the paper's lambda 0.5 (cosine similarities)"),
        _loss("multi_similarity", "epsilon", 0.02, 0.3,
              "our choice: around the paper's mining margin 0.1", log=True)),
    "triplet": (
        _loss("triplet", "margin", 0.01, 0.5,
              "our choice: a decade below and 5x above Proxy Anchor's code's 0.1", log=True),
        Dimension("mining", ("loss.triplet.mining",), choices=("semi_hard", "batch_hard"),
                  source="the two miners the loss implements")),
    "normalized_softmax": (
        _loss("normalized_softmax", "temperature", 0.01, 0.2,
              "our choice: a factor 5 below and 4 above the paper's 0.05", log=True),),
    "hist": (
        _loss("hist", "tau", 8.0, 64.0,
              "HIST code / README: tau 32 by default, 16 on SOP; one factor 2 beyond", log=True),
        _loss("hist", "alpha", 0.5, 2.0, "HIST README: alpha 0.9 (default) to 2 (SOP)"),
        _loss("hist", "lambda_s", 0.25, 4.0,
              "our choice: a factor 4 either side of the HIST code's 1", log=True)),
}


def search_space(loss: str, base_rate: float) -> tuple[Dimension, ...]:
  """The dimensions searched for ``loss`` in a setup of base learning rate ``base_rate``:
  shared ones first, then the loss's own."""
  if loss not in LOSS_DIMENSIONS:
    raise UserInputError(f"--loss={loss}: no search space for it; choose one of "
                         f"{sorted(LOSS_DIMENSIONS)}.")
  proxy_rate = (PROXY_RATE,) if LOSSES[loss].proxies_per_class else ()
  shared = (learning_rate(base_rate), SCHEDULE) + proxy_rate
  return shared + LOSS_DIMENSIONS[loss]


def overrides(space: tuple[Dimension, ...], params: dict[str, Any]) -> tuple[tuple[str, Value],
                                                                              ...]:
  """The ``(field, value)`` config overrides of a trial's drawn ``params``."""
  return tuple((field, params[d.name]) for d in space for field in d.fields)
