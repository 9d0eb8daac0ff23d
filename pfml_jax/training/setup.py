"""A config resolved once into the built objects a training run needs.

Order, as in big_vision: mesh -> splits -> model -> loss and its proxies -> run length ->
optimizer -> shapes first (``jax.eval_shape``) -> shardings -> a state created directly
sharded. The loop, the evaluator and the checkpoint code take these objects, not the config.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from pfml_jax import data as data_lib
from pfml_jax.data.run_splits import read_splits
from pfml_jax.data.split import Split
from pfml_jax.evaluation.embedder import Embedder, build_embedder
from pfml_jax.evaluation.evaluator import Evaluator, make_evaluator
from pfml_jax.losses import Loss, make_loss
from pfml_jax.models import load_pretrained
from pfml_jax.parallel import mesh as mesh_lib
from pfml_jax.settings import RunLength, RunSettings, resolve
from pfml_jax.training.optimizer import make_optimizer
from pfml_jax.training.proxy_init import with_class_mean_proxies
from pfml_jax.training.train_state import TrainState
from pfml_jax.training.train_step import make_train_step

P = jax.sharding.PartitionSpec


@dataclasses.dataclass(frozen=True)
class TrainSetup:
  """Everything a run builds from its config, before any state exists."""

  config: ml_collections.ConfigDict  # kept for the records the run writes
  settings: RunSettings
  mesh: jax.sharding.Mesh
  train: Split
  val: Split | None
  test: Split
  embedder: Embedder
  loss: Loss  # placed on the mesh (see Loss.placed)
  proxy_labels: jax.Array  # (Q,) the class of every proxy, -1 on padding
  length: RunLength
  optimizer: Any
  schedules: dict
  abstract_state: TrainState
  state_shardings: Any
  init: Callable[[jax.Array], TrainState]  # rng -> state, jitted with sharded outputs
  evaluator: Evaluator

  def abstract_sharded_state(self):
    """ShapeDtypeStructs of the state carrying its shardings (what restores target)."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        self.abstract_state, self.state_shardings)


def make_configured_loss(config: ml_collections.ConfigDict) -> Loss:
  """The loss of ``config.loss.name`` with its settings block ``config.loss.<name>``."""
  return make_loss(config.loss.name, **config.loss[config.loss.name])


def build(config: ml_collections.ConfigDict, splits=None, platform: str | None = None,
          devices: Sequence[jax.Device] | None = None) -> TrainSetup:
  """The run's set-up. ``splits`` = (train, val or None, test) replaces reading them from
  ``config.data`` (benchmarks use synthetic splits). The mesh spans ``devices`` (default: the
  process's; ahead-of-time compilation passes a TPU topology's). Platform-dependent choices
  (attention, the energy's path) follow the mesh's devices, or ``platform`` (to export for
  another)."""
  settings = resolve(config, None if devices is None else len(devices))
  configured_loss = make_configured_loss(config)
  mesh = mesh_lib.make_mesh(config.mesh, devices)
  train, val, test = splits or read_splits(config)
  platform = platform or mesh_lib.platform(mesh)
  embedder = build_embedder(config.model, platform)
  loss = configured_loss.placed(mesh, config.mesh.shard_proxies, platform)
  length = settings.run_length(train.labels, train.num_classes)

  def init_trainable(rng):
    model_rng, proxy_rng = jax.random.split(rng)
    variables = embedder.init_variables(model_rng)
    proxies = loss.init_proxies(proxy_rng, train.num_classes, embedder.embedding_dim)
    # A loss without proxies gets no "proxies" entry: orbax cannot save zero-size arrays.
    trainable = {"model": variables["params"]}
    if proxies.shape[0]:
      trainable["proxies"] = proxies
    # The loss's own parameters (HIST's), a "loss" entry only for a loss that has them.
    loss_params = loss.init_params(jax.random.fold_in(proxy_rng, 1), train.num_classes,
                                   embedder.embedding_dim)
    if loss_params:
      trainable["loss"] = loss_params
    return trainable, variables.get("batch_stats", {})

  abstract_trainable, _ = jax.eval_shape(init_trainable, jax.random.key(0))
  optimizer, schedules = make_optimizer(config.optim, abstract_trainable, length.total_steps,
                                        length.steps_per_epoch)

  def init(rng) -> TrainState:
    trainable, batch_stats = init_trainable(rng)
    return TrainState(step=jnp.zeros((), jnp.int32), trainable=trainable,
                      batch_stats=batch_stats, opt_state=optimizer.init(trainable))

  abstract_state = jax.eval_shape(init, jax.random.key(0))
  state_shardings = _state_shardings(abstract_state, mesh, config.mesh.shard_proxies)
  evaluator = make_evaluator(embedder, mesh, config.eval, config.data.workers)
  return TrainSetup(config, settings, mesh, train, val, test, embedder, loss,
                    loss.proxy_labels(train.num_classes), length, optimizer,
                    schedules, abstract_state, state_shardings,
                    jax.jit(init, out_shardings=state_shardings), evaluator)


def _state_shardings(abstract_state, mesh, shard_proxies: bool):
  """Everything replicated, except proxies and their optimizer moments when sharded."""
  def sharding(path, leaf):
    split = shard_proxies and "proxies" in jax.tree_util.keystr(path) and leaf.ndim == 2
    return jax.NamedSharding(mesh, P("data") if split else P())
  return jax.tree_util.tree_map_with_path(sharding, abstract_state)


def fresh_state(setup: TrainSetup) -> TrainState:
  """A new run's state: initialised from the seed, then the pretrained backbone (if any), then
  the proxies placed on their classes (if ``loss.proxy_init`` asks for it)."""
  config = setup.config
  state = setup.init(jax.random.key(config.seed))
  if config.model.pretrained:
    state = with_pretrained(setup, state, config.model.pretrained,
                            config.model.pretrained_strict)
  if config.loss.proxy_init == "class_mean":
    state = with_class_mean_proxies(setup, state)
  return state


def with_pretrained(setup: TrainSetup, state: TrainState, path: str, strict: bool) -> TrainState:
  """The fresh state with the backbone's pretrained weights, placed like the state."""
  variables = load_pretrained(jax.device_get(state.variables()), path,
                              setup.config.model.backbone, strict=strict)
  trainable = dict(state.trainable, model=variables["params"])
  loaded = state.replace(trainable=trainable, batch_stats=variables.get("batch_stats", {}))
  return jax.device_put(loaded, setup.state_shardings)


def open_train_input(setup: TrainSetup, start_step: int,
                     cache: data_lib.ImageCache | None = None) -> data_lib.TrainInput:
  """This process's training batches from ``start_step`` on; ``cache`` replaces building the
  cached mode's image cache (see ``make_train_input``)."""
  config = setup.config
  crops = data_lib.Crops(setup.embedder.image_size, tuple(config.data.crop_scale),
                         tuple(config.data.crop_ratio), config.data.flip,
                         setup.embedder.transform.interpolation)
  if config.data.input_mode == "grain":
    mode = data_lib.GrainMode(workers=config.data.workers)
  else:  # the one-time decode uses the grain mode's whole budget, workers x threads, as threads
    mode = data_lib.CachedMode(
        cache_size=config.data.cache_size or None,
        decode_threads=max(config.data.workers, 1) * data_lib.GrainMode().threads,
        mesh=setup.mesh, cache_axis="data" if config.data.shard_cache else None, cache=cache)
  return data_lib.make_train_input(setup.train, setup.settings.sampler, crops, mode,
                                   start_step=start_step,
                                   process=(jax.process_index(), jax.process_count()))


def input_state(setup: TrainSetup, train_input, next_step: int) -> dict:
  """What the checkpoint records of the input, compared when a run resumes."""
  return {**train_input.plan.state(next_step), "dataset": setup.config.data.name,
          "label_noise": setup.config.data.label_noise}


def jit_train_step(setup: TrainSetup, train_input):
  """The jitted, donated step ``(state, device_data, batch, rng) -> (state, metrics)``: the one
  builder of the step, for the trainer (``compile_train_step``) and for ahead-of-time
  compilation (``pfml_jax.aot``).

  In the cached input mode the image cache lives on device (``device_data``) and the crops
  run inside the step; in the grain mode the batch carries decoded crops.
  """
  step_fn = make_train_step(setup.embedder.model, setup.loss, setup.optimizer,
                            setup.proxy_labels, setup.schedules)

  def input_and_step(state, device_data, batch, rng):
    images = train_input.device_images(device_data, batch)
    return step_fn(state, {"images": images, "labels": batch["labels"]}, rng)

  replicated = mesh_lib.replicated(setup.mesh)
  data_shardings = jax.tree.map(lambda x: x.sharding, train_input.abstract_device_data())
  return jax.jit(
      input_and_step, donate_argnums=(0,),
      in_shardings=(setup.state_shardings, data_shardings,
                    mesh_lib.batch_sharding(setup.mesh), replicated),
      out_shardings=(setup.state_shardings, replicated))


def compile_train_step(setup: TrainSetup, train_input):
  """The jitted, donated step (``jit_train_step``) and the device data it takes, placed."""
  return jit_train_step(setup, train_input), train_input.device_data()
