"""The training loop and checkpoint evaluation.

Order, as in big_vision: mesh -> input -> model, loss and optimizer -> shapes first
(``jax.eval_shape``) -> shardings -> state created directly sharded -> resume or pretrained
weights -> donated, sharded train step -> evaluators -> loop.
"""

import dataclasses
import json
import math
import signal
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from tqdm import tqdm

from pfml_jax import data as data_lib
from pfml_jax import evaluation
from pfml_jax.losses import LOSSES, make_loss
from pfml_jax.models import BACKBONES, load_pretrained, make_embedding_model
from pfml_jax.training import config_validation
from pfml_jax.training.checkpointing import Checkpoints, abstract_like
from pfml_jax.training.metric_writer import MetricWriter
from pfml_jax.training.optimizer import make_optimizer
from pfml_jax.training.run_info import run_info
from pfml_jax.training.train_state import TrainState
from pfml_jax.training.train_step import make_train_step
from pfml_jax.user_errors import ConfigError

P = jax.sharding.PartitionSpec


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss or gradient."""


@dataclasses.dataclass
class Experiment:
  """Everything built from a config, shared by training and evaluation."""

  config: ml_collections.ConfigDict
  mesh: jax.sharding.Mesh
  train: Any  # data.Split
  val: Any | None
  test: Any
  model: Any
  loss: Any
  image_size: int
  proxy_labels: jax.Array
  optimizer: Any
  schedules: dict
  steps_per_epoch: int
  total_steps: int
  state_shardings: Any
  abstract_state: Any
  init: Any  # rng -> TrainState, jitted with sharded outputs
  embed: Any  # (variables, images) -> embeddings, jitted once for every evaluation


# ----------------------------------------------------------------------------------------------
# Set-up
# ----------------------------------------------------------------------------------------------
def make_mesh(mesh_config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """A 1-D 'data' mesh over ``mesh.data`` devices (-1: all)."""
  size = jax.device_count() if mesh_config.data == -1 else mesh_config.data
  if not 1 <= size <= jax.device_count() or jax.device_count() % size:
    raise ConfigError(f"mesh.data={mesh_config.data}: must be -1 or divide the "
                      f"{jax.device_count()} available devices.")
  return jax.make_mesh((size,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:size])


def validation_classes(config: ml_collections.ConfigDict) -> int:
  """Training classes held out for model selection: data.val_classes under "validated"."""
  return config.data.val_classes if config.eval.protocol == "validated" else 0


def read_splits(config: ml_collections.ConfigDict):
  """(train, val or None, test) splits, with label noise applied to train if configured.

  The held-out classes are drawn from ``data.split_seed``, never from ``seed``.
  """
  val_classes = validation_classes(config)
  read = lambda split: data_lib.read_split(
      config.data.name, config.data.root, split, val_classes=val_classes,
      seed=config.data.split_seed, skip_corrupt=config.data.skip_corrupt)
  train = read("train")
  if config.data.label_noise > 0:
    noisy, record = data_lib.apply_label_noise(train.labels, train.num_classes,
                                               config.data.label_noise, config.seed)
    train = train.with_noisy_labels(noisy, record)
  val = read("val") if val_classes > 0 else None
  return train, val, read("test")


def build(config: ml_collections.ConfigDict, splits=None) -> Experiment:
  """Mesh, splits, model, loss, optimizer and the sharded shapes of the train state.

  ``splits`` = (train, val or None, test) replaces reading them from ``config.data``
  (benchmarks use synthetic splits).
  """
  config_validation.validate(config)
  loss = make_loss(config.loss.name, **_loss_arguments(config))
  mesh = make_mesh(config.mesh)
  train, val, test = splits or read_splits(config)
  spec = BACKBONES[config.model.backbone]
  model = make_embedding_model(config.model.backbone, config.model.embedding_dim or None,
                               config.model.pooling or None, frozen_bn=config.model.frozen_bn,
                               dtype=jnp.dtype(config.model.dtype),
                               head_init=config.model.head_init,
                               embedding_norm=config.model.embedding_norm,
                               **config.model.backbone_kwargs)
  image_size = spec.image_size
  images = jnp.zeros((1, image_size, image_size, 3), jnp.uint8)
  embedding_dim = jax.eval_shape(
      lambda rng: model.init_with_output(rng, images, train=False)[0],
      jax.random.key(0)).shape[-1]
  # Proxies are padded (label -1) to a multiple of the mesh so they can be split across it.
  proxy_labels = np.asarray(loss.proxy_labels(train.num_classes))
  proxy_padding = -len(proxy_labels) % mesh.size if config.mesh.shard_proxies else 0
  proxy_labels = jnp.asarray(np.concatenate([proxy_labels, -np.ones(proxy_padding, np.int32)]))

  batch_size = config.data.classes_per_batch * config.data.images_per_class
  steps_per_epoch = math.ceil(len(train) / batch_size)
  total_steps = config.steps or config.epochs * steps_per_epoch

  def init_variables(rng):
    return model.init(rng, images, train=False)

  def init_trainable(rng):
    model_rng, proxy_rng = jax.random.split(rng)
    variables = init_variables(model_rng)
    proxies = loss.init_proxies(proxy_rng, train.num_classes, embedding_dim)
    proxies = jnp.pad(proxies, ((0, proxy_padding), (0, 0)))
    trainable = {"model": variables["params"], "proxies": proxies}
    # The loss's own parameters (HIST's), a "loss" entry only for a loss that has them.
    loss_params = loss.init_params(jax.random.fold_in(proxy_rng, 1), train.num_classes,
                                   embedding_dim, proxy_padding)
    if loss_params:
      trainable["loss"] = loss_params
    return trainable, variables.get("batch_stats", {})

  abstract_trainable, _ = jax.eval_shape(init_trainable, jax.random.key(0))
  optimizer, schedules = make_optimizer(config.optim, abstract_trainable, total_steps,
                                        steps_per_epoch)

  def init(rng) -> TrainState:
    trainable, batch_stats = init_trainable(rng)
    return TrainState(step=jnp.zeros((), jnp.int32), trainable=trainable,
                      batch_stats=batch_stats, opt_state=optimizer.init(trainable))

  abstract_state = jax.eval_shape(init, jax.random.key(0))
  state_shardings = _state_shardings(abstract_state, mesh, config.mesh.shard_proxies)

  def embed_images(variables, images):
    return model.apply(variables, images, train=False)

  batch_sharding = jax.NamedSharding(mesh, P("data"))
  embed = jax.jit(embed_images, out_shardings=batch_sharding,
                  in_shardings=(_replicated_like(abstract_state.variables(), mesh),
                                batch_sharding))
  return Experiment(config, mesh, train, val, test, model, loss, image_size, proxy_labels,
                    optimizer, schedules, steps_per_epoch, total_steps, state_shardings,
                    abstract_state, jax.jit(init, out_shardings=state_shardings), embed)


def _loss_arguments(config):
  """The settings block of the chosen loss (``config.loss.<name>``) as make_loss arguments."""
  arguments = dict(config.loss[config.loss.name])
  per_class = arguments.pop("proxies_per_class")
  if LOSSES[config.loss.name].proxies_per_class > 0:
    arguments["proxies_per_class"] = per_class
  elif per_class:
    raise ConfigError(f"config.loss.{config.loss.name}.proxies_per_class: loss "
                      f"{config.loss.name!r} uses no proxies; leave it 0, got {per_class}.")
  return arguments


def _state_shardings(abstract_state, mesh, shard_proxies: bool):
  """Everything replicated, except proxies and their optimizer moments when sharded."""
  def sharding(path, leaf):
    split = shard_proxies and "proxies" in jax.tree_util.keystr(path) and leaf.ndim == 2
    return jax.NamedSharding(mesh, P("data") if split else P())
  return jax.tree_util.tree_map_with_path(sharding, abstract_state)


def _with_pretrained(exp: Experiment, state: TrainState) -> TrainState:
  """The fresh state with the backbone's pretrained weights, placed like the state."""
  path = exp.config.model.pretrained
  variables = load_pretrained(jax.device_get(state.variables()), path,
                              exp.config.model.backbone,
                              strict=exp.config.model.pretrained_strict)
  trainable = dict(state.trainable, model=variables["params"])
  loaded = state.replace(trainable=trainable, batch_stats=variables.get("batch_stats", {}))
  return jax.device_put(loaded, exp.state_shardings)


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------
def evaluate(exp: Experiment, state: TrainState, split, *, ks=None) -> dict[str, float]:
  """Retrieval metrics of the model in ``state`` on ``split`` (every item queries the rest)."""
  config = exp.config
  spec = BACKBONES[config.model.backbone]
  batch_size = _multiple(config.eval.batch_size, exp.mesh.size)
  batch_sharding = jax.NamedSharding(exp.mesh, P("data"))
  variables = state.variables()
  batches = data_lib.eval_batches(
      split, batch_size=batch_size, image_size=spec.image_size,
      resize_size=config.model.eval_resize or spec.resize_size,
      interpolation=spec.interpolation, process_index=jax.process_index(),
      process_count=jax.process_count(), workers=config.data.workers)
  embeddings, labels = evaluation.extract_embeddings(
      lambda images: exp.embed(variables, _global_array(images, batch_sharding)), batches,
      progress=jax.process_index() == 0)
  return evaluation.retrieval_metrics(embeddings, labels, tuple(ks or config.eval.ks),
                                      backend=config.eval.backend, nmi=config.eval.nmi)


def _replicated_like(tree, mesh):
  return jax.tree.map(lambda _: jax.NamedSharding(mesh, P()), tree)


def _multiple(value: int, base: int) -> int:
  return max(base, (value // base) * base)


def _global_array(rows: np.ndarray, sharding) -> jax.Array:
  """This process's rows -> one global array split over the mesh's data axis."""
  rows = np.asarray(rows)
  global_shape = (rows.shape[0] * jax.process_count(),) + rows.shape[1:]
  return jax.make_array_from_process_local_data(sharding, rows, global_shape)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
class _Preemption:
  """Turns SIGTERM (preemptible TPU VMs, SLURM) into a clean save-and-exit at a step boundary."""

  def __init__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM: saving a checkpoint at the next step boundary, then exiting.")
    self.requested = True

  def agreed(self) -> bool:
    """True on every process once any process was asked to stop."""
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.array(self.requested))))

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)


def make_train_input(exp: Experiment, start_step: int):
  """This process's training batches from ``start_step`` on (see data.make_train_input)."""
  config = exp.config
  return data_lib.make_train_input(
      exp.train, batch_size=batch_size_of(config),
      classes_per_batch=config.data.classes_per_batch, image_size=exp.image_size,
      scale=tuple(config.data.crop_scale), ratio=tuple(config.data.crop_ratio),
      interpolation=BACKBONES[config.model.backbone].interpolation,
      mode=config.data.input_mode, seed=config.seed, start_step=start_step,
      sampler=config.data.sampler,
      process_index=jax.process_index(), process_count=jax.process_count(),
      workers=config.data.workers, cache_size=config.data.cache_size or None, mesh=exp.mesh)


def compile_train_step(exp: Experiment, train_input):
  """The jitted, donated step ``(state, device_data, batch, rng) -> (state, metrics)``.

  In the cached input mode the image cache lives on device (``device_data``) and the crops
  run inside the step; in the grain mode the batch carries decoded crops.
  """
  config = exp.config
  loss_options = ({"mesh": exp.mesh} if config.loss.name == "pfml" and
                  config.mesh.shard_proxies and exp.mesh.size > 1 else {})
  step_fn = make_train_step(exp.model, exp.loss, exp.optimizer, exp.proxy_labels,
                            exp.schedules, loss_options)

  def input_and_step(state, device_data, batch, rng):
    images = train_input.device_images(device_data, batch)
    return step_fn(state, {"images": images, "labels": batch["labels"]}, rng)

  device_data = train_input.device_data()
  replicated = jax.NamedSharding(exp.mesh, P())
  train_step = jax.jit(
      input_and_step, donate_argnums=(0,),
      in_shardings=(exp.state_shardings, jax.tree.map(lambda x: x.sharding, device_data),
                    jax.NamedSharding(exp.mesh, P("data")), replicated),
      out_shardings=(exp.state_shardings, replicated))
  return train_step, device_data


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (resuming from ``workdir`` if it holds a checkpoint), then evaluates on test.

  Returns:
    The report of ``_final_evaluation``: "protocol", "step", "val" (None under "paper"),
    "test", "selection_metric", and "best_on_test" (paper) or "final" (validated); or
    {"step", "preempted": True} after a SIGTERM.
  """
  exp = build(config)
  with MetricWriter(workdir) as writer, Checkpoints(
      workdir, keep=config.checkpoint.keep,
      selection_metric=config.eval.selection_metric) as checkpoints:
    config_json = config.to_dict()
    writer.write_json("run_info.json", run_info(
        config, train_images=len(exp.train), train_classes=exp.train.num_classes,
        steps_per_epoch=exp.steps_per_epoch, total_steps=exp.total_steps))
    if exp.train.label_noise is not None:
      writer.write_json("label_noise.json", exp.train.label_noise.to_json())
    logging.info("config:\n%s", config)

    state = _resume_or_init(exp, checkpoints)
    start_step = int(jax.device_get(state.step))

    train_input = make_train_input(exp, start_step)
    train_step, device_data = compile_train_step(exp, train_input)
    rng = jax.random.key(config.seed + 1)

    def save(step, metrics=None):
      checkpoints.save(step, state, {"next_step": step, "seed": config.seed}, config_json, metrics)

    batch_sharding = jax.NamedSharding(exp.mesh, P("data"))
    eval_every = max(1, int(config.eval.every_epochs * exp.steps_per_epoch))
    preemption = _Preemption()
    progress = tqdm(total=exp.total_steps, initial=start_step, desc="train", unit="step",
                    disable=jax.process_index() != 0, dynamic_ncols=True)
    pending, window, window_start = None, [], time.perf_counter()
    try:
      for step, host_batch in zip(range(start_step, exp.total_steps), train_input):
        batch = {k: _global_array(v, batch_sharding) for k, v in host_batch.items()}
        state, metrics = train_step(state, device_data, batch, jax.random.fold_in(rng, step))
        if pending is not None:  # read the previous step's metrics: the device stays busy
          window.append(_check_finite(jax.device_get(pending), step - 1, checkpoints))
        pending = metrics
        progress.update(1)
        done = step + 1
        stop = preemption.agreed()
        evaluate_now = done % eval_every == 0 or done == exp.total_steps
        save_now = stop or evaluate_now or done % config.checkpoint.every_steps == 0
        if pending is not None and (save_now or done % config.log_every_steps == 0):
          # This step's metrics before any save: a skipped (non-finite) step is never saved.
          window.append(_check_finite(jax.device_get(pending), step, checkpoints))
          pending = None
        if done % config.log_every_steps == 0 or done == exp.total_steps:
          elapsed = time.perf_counter() - window_start
          summary = {k: float(np.mean([m[k] for m in window]))
                     for k in window[0] if k != "finite"}
          summary.update({"step_time_s": elapsed / len(window),
                          "images_per_s": len(window) * batch_size_of(config) / elapsed,
                          "epoch": done / exp.steps_per_epoch})
          writer.write_scalars(done, summary)
          progress.set_postfix({k: f"{summary[k]:.4g}" for k in ("loss", "loss_above_floor")
                                if k in summary})
          window, window_start = [], time.perf_counter()
        if evaluate_now:
          save(done, _periodic_evaluation(exp, state, done, writer))
        elif save_now:
          save(done)
        if stop:
          save(done)
          checkpoints.wait()
          logging.warning("Stopped at step %d on SIGTERM; rerun the same command to resume.",
                          done)
          return {"step": done, "preempted": True}
      if pending is not None:
        _check_finite(jax.device_get(pending), exp.total_steps - 1, checkpoints)
    finally:
      progress.close()
      preemption.restore()
      checkpoints.wait()

    return _final_evaluation(exp, checkpoints, state, writer)


def _resume_or_init(exp: Experiment, checkpoints: Checkpoints) -> TrainState:
  """The latest checkpoint's state, or a fresh (optionally pretrained) one."""
  restored = checkpoints.restore_latest_readable(
      abstract_like(exp.abstract_state, exp.state_shardings))
  if restored is None:
    state = exp.init(jax.random.key(exp.config.seed))
    return _with_pretrained(exp, state) if exp.config.model.pretrained else state
  step, state, input_state = restored
  logging.info("Resumed from step %d (%s).", step, input_state)
  return state


def batch_size_of(config) -> int:
  return config.data.classes_per_batch * config.data.images_per_class


def _check_finite(metrics: dict, step: int, checkpoints: Checkpoints) -> dict:
  if not bool(metrics["finite"]):
    checkpoints.wait()
    raise NonFiniteLossError(
        f"Step {step}: the loss or its gradient is not finite (loss={metrics['loss']}, "
        f"grad norm={metrics['grad_norm']}). That step was not applied and the checkpoints in "
        f"{checkpoints.directory} (latest: {checkpoints.latest_step()}) are from before it. "
        "Lower optim.learning_rate, enable optim.clip, or check the inputs.")
  return metrics


def _periodic_evaluation(exp, state, step: int, writer) -> dict[str, float]:
  """The metrics the checkpoint at ``step`` is ranked by: validation ("validated") or test
  ("paper", written to ``eval/step_<step>.json`` so the best over training can be found)."""
  if exp.val is not None:
    metrics = evaluate(exp, state, exp.val)
    writer.write_scalars(step, {f"val/{k}": v for k, v in metrics.items()})
    return metrics
  metrics = evaluate(exp, state, exp.test)
  writer.write_scalars(step, {f"test/{k}": v for k, v in metrics.items()})
  writer.write_json(f"eval/step_{step}.json", {"step": step, "val": None, "test": metrics})
  return metrics


def _test_history(workdir: Path) -> dict[int, dict]:
  """Test metrics by step from the run's ``eval/step_<N>.json`` files."""
  history = {}
  for path in (workdir / "eval").glob("step_*.json"):
    record = json.loads(path.read_text())
    if record.get("test"):
      history[int(record["step"])] = record["test"]
  return history


def _final_evaluation(exp, checkpoints, state, writer) -> dict[str, Any]:
  """The run's report, by ``eval.protocol``.

  paper: the final test metrics, and the best test metrics over training with their step
    (the checkpoint chosen on test: the field's practice, optimistic).
  validated: the test metrics of the checkpoint chosen on validation classes, and of the
    final state.
  Both are written to ``eval/summary.json`` and, as ``final_test/*``, ``best_test/*`` or
  ``selected_test/*`` scalars, to metrics.jsonl.
  """
  config = exp.config
  step = int(jax.device_get(state.step))
  selection = config.eval.selection_metric
  history = _test_history(writer.workdir)
  final = history.get(step) or evaluate(exp, state, exp.test)
  result = {"protocol": config.eval.protocol, "step": step, "val": None, "test": final,
            "selection_metric": selection}
  if exp.val is None:
    history[step] = final
    best = max(sorted(history), key=lambda s: history[s][selection])
    result["best_on_test"] = {"step": best, "test": history[best],
                              "note": f"checkpoint chosen by test {selection} (optimistic)"}
    scalars = {"final_test": final, "best_test": history[best]}
  else:
    chosen = checkpoints.best_step()
    if chosen != step:
      state, _ = checkpoints.restore(chosen, abstract_like(exp.abstract_state,
                                                           exp.state_shardings))
    selected = final if chosen == step else evaluate(exp, state, exp.test)
    result.update(step=chosen, val=checkpoints.metrics(chosen), test=selected,
                  final={"step": step, "test": final})
    scalars = {"final_test": final, "selected_test": selected}
  for prefix, metrics in scalars.items():
    writer.write_scalars(step, {f"{prefix}/{k}": v for k, v in metrics.items()})
  writer.write_json(f"eval/step_{result['step']}.json",
                    {"step": result["step"], "val": result["val"], "test": result["test"]})
  writer.write_json("eval/summary.json", result)
  logging.info("Test metrics (%s protocol): %s", config.eval.protocol, result)
  return result


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                        which: str = "best") -> dict[str, Any]:
  """Restores checkpoint ``which`` (best | latest | step) and evaluates it on val and test."""
  exp = build(config)
  with Checkpoints(workdir, keep=config.checkpoint.keep,
                   selection_metric=config.eval.selection_metric, read_only=True) as checkpoints:
    step = checkpoints.resolve(which)
    state, _ = checkpoints.restore(step, abstract_like(exp.abstract_state, exp.state_shardings))
  result = {"step": step, "test": evaluate(exp, state, exp.test),
            "val": evaluate(exp, state, exp.val) if exp.val is not None else None}
  with MetricWriter(workdir) as writer:
    writer.write_json(f"eval/step_{step}.json", result)
  logging.info("Checkpoint %d: %s", step, result)
  return result
