"""The pure train step with a tiny real model: every registered loss trains through it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax import default_config
from pfml_jax.checkpoint.state_digest import array_names
from pfml_jax.losses import LOSSES, make_loss
from pfml_jax.models import make_embedding_model
from pfml_jax.training.optimizer import make_optimizer
from pfml_jax.training.train_state import TrainState
from pfml_jax.training.train_step import make_train_step

NUM_CLASSES, IMAGE = 6, 32


def setup(loss_name, frozen_bn=False, backbone="vit_tiny", warmup_epochs=0):
  model = make_embedding_model(backbone, 16, frozen_bn=frozen_bn)
  loss = make_loss(loss_name, **({"proxies_per_class": 2}
                                 if LOSSES[loss_name].proxies_per_class else {}))
  variables = jax.jit(lambda rng: model.init(rng, jnp.zeros((1, IMAGE, IMAGE, 3), jnp.uint8),
                                             train=False))(jax.random.key(0))
  trainable = {"model": variables["params"],
               "proxies": loss.init_proxies(jax.random.key(1), NUM_CLASSES, 16)}
  loss_params = loss.init_params(jax.random.key(2), NUM_CLASSES, 16)
  if loss_params:
    trainable["loss"] = loss_params
  optim = default_config.get_config().optim
  optim.update(learning_rate=1e-3, warmup_epochs=warmup_epochs)
  optimizer, schedules = make_optimizer(optim, trainable, total_steps=10, steps_per_epoch=5)
  state = TrainState(jnp.zeros((), jnp.int32), trainable, variables.get("batch_stats", {}),
                     jax.jit(optimizer.init)(trainable))
  step = jax.jit(make_train_step(model, loss, optimizer, loss.proxy_labels(NUM_CLASSES),
                                 schedules))
  return state, step


def batch(seed=0):
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(4), 2).astype(np.int32)
  images = rng.integers(0, 256, (8, IMAGE, IMAGE, 3), dtype=np.uint8)
  return {"images": jnp.asarray(images), "labels": jnp.asarray(labels)}


def tree_changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_every_loss_trains_through_the_step(loss_name):
  state, step = setup(loss_name)
  before = jax.device_get(state)
  for i in range(3):
    state, metrics = step(state, batch(i), jax.random.key(i))
    assert bool(metrics["finite"]) and np.isfinite(float(metrics["loss"]))
  assert int(state.step) == 3
  assert tree_changed(before.trainable["model"], state.trainable["model"])
  if LOSSES[loss_name].proxies_per_class:
    assert tree_changed(before.trainable["proxies"], state.trainable["proxies"])
  if LOSSES[loss_name].init_params:
    for part in ("proxies", "hgnn"):
      assert tree_changed(before.trainable["loss"][part], state.trainable["loss"][part])
    assert float(metrics["lr/loss"]) == pytest.approx(1e-2)  # 1e-3 x loss_params_lr_mult 10
  else:
    assert "loss" not in state.trainable and "lr/loss" not in metrics


def test_warmup_keeps_the_backbone_fixed_through_the_step():
  """One warm-up epoch (5 steps): the backbone's parameters stay bit for bit while the head and
  the proxies train; the step after it moves the backbone."""
  state, step = setup("pfml", warmup_epochs=1)
  before = jax.device_get(state.trainable)
  for i in range(5):
    state, metrics = step(state, batch(i), jax.random.key(i))
    assert float(metrics["lr/backbone"]) == 0.0 and float(metrics["lr/head"]) > 0.0
  assert not tree_changed(before["model"]["backbone"], state.trainable["model"]["backbone"])
  assert tree_changed(before["model"]["head"], state.trainable["model"]["head"])
  assert tree_changed(before["proxies"], state.trainable["proxies"])
  state, metrics = step(state, batch(5), jax.random.key(5))
  assert float(metrics["lr/backbone"]) > 0.0
  assert tree_changed(before["model"]["backbone"], state.trainable["model"]["backbone"])


def test_hist_decreases_on_a_fixed_batch():
  state, step = setup("hist")
  losses = []
  for _ in range(8):
    state, metrics = step(state, batch(0), jax.random.key(0))
    assert bool(metrics["finite"])
    losses.append(float(metrics["loss"]))
  assert losses[-1] < 0.9 * losses[0]


def test_pfml_energy_decreases_on_a_fixed_batch():
  """The energy falls, and so does its part above the floor, which stays positive."""
  state, step = setup("pfml")
  losses, above_floor = [], []
  for _ in range(8):
    state, metrics = step(state, batch(0), jax.random.key(0))
    losses.append(float(metrics["loss"]))
    above_floor.append(float(metrics["loss_above_floor"]))
  assert losses[-1] < losses[0]
  assert 0 < above_floor[-1] < above_floor[0]
  assert above_floor[0] - above_floor[-1] == pytest.approx(losses[0] - losses[-1], rel=1e-3)


@pytest.mark.parametrize("frozen_bn", [True, False])
def test_batch_norm_statistics_follow_frozen_flag(frozen_bn):
  state, step = setup("pfml", frozen_bn=frozen_bn, backbone="resnet50_tiny")
  before = jax.device_get(state.batch_stats)
  state, _ = step(state, batch(), jax.random.key(0))
  assert tree_changed(before, state.batch_stats) != frozen_bn


def poison_proxies(state):
  return state.replace(trainable=dict(state.trainable,
                                      proxies=state.proxies.at[0, 0].set(jnp.nan)))


def poison_running_variance(state):
  """An infinite BatchNorm running variance: the loss, gradients and parameters stay finite
  (training normalises by the batch's statistics), only the new statistics are not."""
  names = array_names(state.batch_stats)
  assert "backbone/bn1/var" in names
  leaves, structure = jax.tree.flatten(state.batch_stats)
  stats = jax.tree.unflatten(structure, [x.at[0].set(jnp.inf) if name == "backbone/bn1/var"
                                         else x for name, x in zip(names, leaves)])
  return state.replace(batch_stats=stats)


@pytest.mark.parametrize("backbone,poison,expected", [
    ("vit_tiny", poison_proxies, "trainable/proxies"),
    ("resnet50_tiny", poison_running_variance, "batch_stats/backbone/bn1/var")])
def test_non_finite_step_leaves_the_whole_state_unchanged(backbone, poison, expected):
  state, step = setup("pfml", backbone=backbone)
  poisoned = poison(state)
  before = jax.device_get(poisoned)
  after, metrics = step(poisoned, batch(), jax.random.key(0))
  assert not bool(metrics["finite"])
  names = array_names(before)
  assert len(names) == len(jax.tree.leaves(before)) == len(metrics["finite_arrays"])
  flagged = [name for name, ok in zip(names, metrics["finite_arrays"]) if not ok]
  assert expected in flagged
  after = jax.device_get(after)
  assert jax.tree.structure(after) == jax.tree.structure(before)
  for name, a, b in zip(names, jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_array_equal(a, b, err_msg=name)  # step, params, batch_stats, opt_state
