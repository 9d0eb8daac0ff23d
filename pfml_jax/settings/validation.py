"""Every check of a config, each written once, before any data is read: each error names the
field and what to set."""

import re

import jax
import ml_collections

from pfml_jax import checks
from pfml_jax.data import MODES
from pfml_jax.data.sampler import SAMPLERS
from pfml_jax.losses import LOSSES, make_loss
from pfml_jax.models import BACKBONES
from pfml_jax.models.embedding import check_head
from pfml_jax.user_errors import ConfigError

PROTOCOLS = ("paper", "validated")
PROXY_INITS = ("random", "class_mean")  # the schemes of training/proxy_init.py
SCHEDULES = ("constant", "cosine", "step")  # the shapes of training/optimizer.py
CLIPS = ("adaptive", "none", "norm", "value")  # the clippings of training/optimizer.py
WEIGHT_DECAY_STYLES = ("decoupled", "coupled")

_SELECTION = re.compile(r"recall@(\d+)|map@r|r_precision")


def _require(condition: bool, field: str, message: str) -> None:
  if not condition:
    raise ConfigError(f"config.{field}: {message}")


def _checked(field: str, check, *args) -> None:
  """Runs a check shared with the code that uses the values (``pfml_jax.checks``, the loss
  registry, the embedding model), its error prefixed with the config field."""
  try:
    check(*args)
  except ConfigError as error:
    raise ConfigError(f"config.{field}: {error}") from None


def divisible_classes_per_batch(classes: int, images_per_class: int, devices: int) -> int:
  """The classes per batch nearest ``classes`` (ties: fewer) whose batch splits evenly over
  ``devices``."""
  candidates = [c for c in range(2, 2 * classes + devices + 1)
                if c * images_per_class % devices == 0]
  return min(candidates, key=lambda c: (abs(c - classes), c))


def data_axis_size(config: ml_collections.ConfigDict, device_count: int) -> int:
  """Devices on the mesh's data axis (``mesh.data``; -1 = all ``device_count``)."""
  return device_count if config.mesh.data == -1 else config.mesh.data


def validate(config: ml_collections.ConfigDict, device_count: int | None = None) -> None:
  """Raises ConfigError (a ValueError) for the first bad value found; the batch is checked
  against ``device_count`` devices (default: the process's)."""
  data, model, optim = config.data, config.model, config.optim
  _require(model.backbone in BACKBONES, "model.backbone",
           f"{model.backbone!r} is not one of {sorted(BACKBONES)}.")
  _require(config.loss.name in LOSSES, "loss.name",
           f"{config.loss.name!r} is not one of {sorted(LOSSES)}.")
  _require(model.dtype in ("float32", "bfloat16"), "model.dtype",
           f"must be 'float32' or 'bfloat16', got {model.dtype!r}.")
  _require(model.embedding_dim >= 0, "model.embedding_dim",
           f"must be >= 0 (0 = no projection head), got {model.embedding_dim}.")
  _require(data.classes_per_batch >= 2 and data.images_per_class >= 1,
           "data.classes_per_batch / images_per_class",
           f"need >= 2 classes and >= 1 image per class, got {data.classes_per_batch} x "
           f"{data.images_per_class}.")
  least = LOSSES[config.loss.name].min_images_per_class
  _require(data.images_per_class >= least, "data.images_per_class",
           f"loss {config.loss.name!r} learns from positive pairs inside the batch: set it to "
           f">= {least}, got {data.images_per_class}.")
  batch = data.classes_per_batch * data.images_per_class
  devices = data_axis_size(config, device_count or jax.device_count())
  where = "data.classes_per_batch x images_per_class"
  if devices > 0 and batch % devices:
    classes = divisible_classes_per_batch(data.classes_per_batch, data.images_per_class,
                                          devices)
    raise ConfigError(f"config.{where}: batch_size={batch} must divide evenly over {devices} "
                      f"devices of the mesh (mesh.data); e.g. set data.classes_per_batch="
                      f"{classes} (batch {classes * data.images_per_class}).")
  _checked(where, checks.divides, batch, devices, "devices of the mesh (mesh.data)")
  _checked(where, checks.divides, batch, jax.process_count(), "processes")
  _require(data.sampler in SAMPLERS, "data.sampler",
           f"{data.sampler!r} is not one of {sorted(SAMPLERS)}.")
  _require(data.input_mode in MODES, "data.input_mode",
           f"must be one of {MODES}, got {data.input_mode!r}.")
  _require(data.cache_size >= 0, "data.cache_size",
           f"must be >= 0 (0 = original sizes), got {data.cache_size}.")
  _require(0.0 <= data.label_noise < 1.0, "data.label_noise",
           f"must be in [0, 1), got {data.label_noise}.")
  _require(data.val_classes >= 0, "data.val_classes", f"must be >= 0, got {data.val_classes}.")
  _require(config.eval.protocol in PROTOCOLS, "eval.protocol",
           f"must be one of {PROTOCOLS}, got {config.eval.protocol!r}.")
  _require(config.eval.protocol != "validated" or data.val_classes > 0, "data.val_classes",
           "eval.protocol='validated' selects the checkpoint on held-out training classes: "
           f"set data.val_classes > 0 (got {data.val_classes}), or use eval.protocol='paper'.")
  _checked("model.head_init / embedding_norm", check_head, model.head_init,
           model.embedding_norm)
  _require(model.eval_resize == 0 or model.eval_resize >= BACKBONES[model.backbone].image_size,
           "model.eval_resize", f"must be 0 (the backbone's) or >= the crop size "
           f"{BACKBONES[model.backbone].image_size}, got {model.eval_resize}.")
  try:
    re.compile(optim.frozen)
  except re.error as error:
    _require(False, "optim.frozen", f"not a regular expression ({error}): {optim.frozen!r}.")
  for name in config.loss:
    _require(name in ("name", "proxy_init") or name in LOSSES, f"loss.{name}",
             f"no such loss; the loss blocks are {sorted(LOSSES)}.")
  _checked(f"loss.{config.loss.name}", _check_loss_settings, config.loss)
  _require(config.loss.proxy_init in PROXY_INITS, "loss.proxy_init",
           f"must be one of {PROXY_INITS}, got {config.loss.proxy_init!r}.")
  _require(config.loss.proxy_init == "random" or
           config.loss[config.loss.name].proxies_per_class > 0, "loss.proxy_init",
           f"{config.loss.proxy_init!r} places proxies, but loss {config.loss.name!r} runs "
           "without any (proxies_per_class 0): use 'random'.")
  _checked("data.crop_scale / data.crop_ratio", checks.crop_ranges, data.crop_scale,
           data.crop_ratio)
  _validate_optimizer(optim)
  _require(optim.learning_rate > 0, "optim.learning_rate",
           f"must be > 0, got {optim.learning_rate}.")
  for name in ("backbone_lr_mult", "head_lr_mult", "proxy_lr_mult", "loss_params_lr_mult",
               "weight_decay", "warmup_epochs", "clip_threshold"):
    _require(optim[name] >= 0, f"optim.{name}", f"must be >= 0, got {optim[name]}.")
  _require(config.steps >= 0, "steps",
           f"must be >= 0 (0 = run config.epochs epochs), got {config.steps}.")
  _require(config.epochs >= 0, "epochs", f"must be >= 0, got {config.epochs}.")
  _require(config.steps > 0 or config.epochs > 0, "epochs",
           "set epochs > 0 or steps > 0 (steps overrides epochs).")
  _require(len(config.eval.ks) > 0 and all(k >= 1 for k in config.eval.ks), "eval.ks",
           f"must be positive integers, got {config.eval.ks}.")
  match = _SELECTION.fullmatch(config.eval.selection_metric)
  _require(match is not None and (match.group(1) is None or
                                  int(match.group(1)) in config.eval.ks),
           "eval.selection_metric",
           f"{config.eval.selection_metric!r} must be map@r, r_precision or recall@K with K "
           f"in eval.ks {tuple(config.eval.ks)}.")
  for name in ("eval.every_epochs", "checkpoint.every_steps", "checkpoint.keep",
               "log_every_steps", "eval.batch_size"):
    value = config[name.split(".")[0]][name.split(".")[1]] if "." in name else config[name]
    _require(value > 0, name, f"must be > 0, got {value}.")


def _validate_optimizer(optim: ml_collections.ConfigDict) -> None:
  """The optimizer's choices by name (the rates and decays are checked with the numbers)."""
  _require(optim.schedule in SCHEDULES, "optim.schedule",
           f"must be one of {list(SCHEDULES)}, got {optim.schedule!r}.")
  _require(optim.clip in CLIPS, "optim.clip", f"must be one of {list(CLIPS)}, got {optim.clip!r}.")
  _require(optim.weight_decay_style in WEIGHT_DECAY_STYLES, "optim.weight_decay_style",
           f"must be one of {list(WEIGHT_DECAY_STYLES)}, got {optim.weight_decay_style!r}.")


def _check_loss_settings(loss: ml_collections.ConfigDict) -> None:
  """Raises the registry's ConfigError for bad settings of the chosen loss (hyperparameters,
  proxies_per_class), before any data is read."""
  make_loss(loss.name, **loss[loss.name])


def validate_training_split(config: ml_collections.ConfigDict, train_classes: int) -> None:
  """Raises ConfigError when the training split has fewer classes than a class-balanced batch
  draws (the random sampler draws images, and its classes_per_batch is the batch size)."""
  if config.data.sampler != "class_balanced":
    return
  held_out = (f" ({config.data.val_classes} more are held out as data.val_classes)"
              if config.eval.protocol == "validated" else "")
  _require(config.data.classes_per_batch <= train_classes, "data.classes_per_batch",
           f"{config.data.classes_per_batch} classes per batch, but the training split has "
           f"{train_classes} classes{held_out}; set data.classes_per_batch <= {train_classes}.")
