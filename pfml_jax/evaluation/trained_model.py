"""A trained model read back from a run's checkpoint, without its datasets or optimizer.

Every checkpoint stores the resolved config it was trained with; the model is rebuilt from
that config and its arrays are restored by the shapes the checkpoint itself records, so
evaluation, embedding, search, plots and export need neither the training data nor the loss.
"""

import dataclasses
import json
from pathlib import Path

import jax
import ml_collections
import numpy as np

from pfml_jax import default_config
from pfml_jax.checkpoint.checkpoints import Checkpoints
from pfml_jax.evaluation.embedder import Embedder, build_embedder


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """The embedding model of checkpoint ``step`` of a run, its variables on the host."""

  workdir: Path
  step: int
  config: ml_collections.ConfigDict  # the config the checkpoint was trained with
  embedder: Embedder
  variables: dict  # flax variables: {"params", and "batch_stats" for BatchNorm backbones}
  proxies: np.ndarray  # (Q, E) the loss's learnable proxies (Q = 0 without), padding included
  proxy_labels: np.ndarray  # (Q,) training class of each proxy, -1 on padding rows


def load_trained_model(workdir: str | Path, which: str = "best",
                       platform: str | None = None) -> TrainedModel:
  """Checkpoint ``which`` (best | latest | a step number) of the run in ``workdir``, its model
  built for ``platform`` (None: the default device's; see ``pfml_jax.platforms``)."""
  workdir = Path(workdir)
  with Checkpoints(workdir, keep=1, selection_metric="recall@1", read_only=True) as checkpoints:
    step = checkpoints.resolve(which)
    config_dict = checkpoints.restore_config(step)
    state = checkpoints.restore_as_saved(step)
  config = recorded_config(config_dict)
  variables = {"params": state["trainable"]["model"]}
  if state.get("batch_stats"):
    variables["batch_stats"] = state["batch_stats"]
  embedder = build_embedder(config.model, platform)
  proxies = np.asarray(state["trainable"].get("proxies",
                                              np.zeros((0, embedder.embedding_dim), np.float32)))
  return TrainedModel(workdir, step, config, embedder,
                      jax.device_get(variables), proxies,
                      _proxy_labels(workdir, config, len(proxies)))


def recorded_config(saved: dict) -> ml_collections.ConfigDict:
  """The config a checkpoint recorded, over today's defaults: a field added since it was
  written takes its default, which keeps the behaviour the run was trained with."""
  config = default_config.get_config()
  config.update(saved)
  return config


def _proxy_labels(workdir: Path, config, rows: int) -> np.ndarray:
  """Proxies are class-major, M per class, then padding (see losses/proxies.py)."""
  per_class = config.loss[config.loss.name].proxies_per_class
  if rows == 0 or per_class == 0:
    return np.full((rows,), -1, np.int32)
  info = workdir / "run_info.json"
  classes = (json.loads(info.read_text())["train_classes"] if info.exists()
             else rows // per_class)
  labels = np.full((rows,), -1, np.int32)
  labels[:classes * per_class] = np.repeat(np.arange(classes, dtype=np.int32), per_class)
  return labels


