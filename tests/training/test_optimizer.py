"""Optimizer groups: learning-rate multipliers, warm-up freeze, decay masks, clipping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pfml_jax import default_config
from pfml_jax.settings import validation
from pfml_jax.training.optimizer import group_of, make_optimizer


def trainable_tree():
  return {"model": {"backbone": {"conv": {"kernel": jnp.ones((3, 3))},
                                 "bn1": {"scale": jnp.ones(3), "bias": jnp.ones(3)}},
                    "head": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)}},
          "proxies": jnp.ones((4, 2))}


def optim_config(**overrides):
  optim = default_config.get_config().optim
  optim.update(overrides)
  return optim


def test_groups_by_path():
  assert group_of("model/backbone/conv/kernel") == "backbone"
  assert group_of("model/head/kernel") == "head"
  assert group_of("proxies") == "proxies"
  assert group_of("loss/hgnn/theta1/kernel") == "loss"
  assert group_of("loss/proxies/log_variances") == "proxies"
  with pytest.raises(ValueError, match="no optimizer group"):
    group_of("model/classifier/kernel")


def test_warmup_freezes_backbone_then_multipliers_apply():
  optim = optim_config(learning_rate=1e-3, warmup_epochs=2, head_lr_mult=2.0,
                       proxy_lr_mult=100.0)
  _, schedules = make_optimizer(optim, trainable_tree(), total_steps=100, steps_per_epoch=5)
  assert float(schedules["backbone"](0)) == 0.0 and float(schedules["backbone"](9)) == 0.0
  assert float(schedules["backbone"](10)) == pytest.approx(1e-3)
  assert float(schedules["head"](0)) == pytest.approx(2e-3)
  assert float(schedules["proxies"](0)) == pytest.approx(1e-1)


def test_weight_decay_spares_proxies_norms_and_biases():
  optim = optim_config(learning_rate=0.1, weight_decay=0.5, warmup_epochs=0)
  params = trainable_tree()
  tx, _ = make_optimizer(optim, params, total_steps=10, steps_per_epoch=1)
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  decayed = 1.0 - 0.1 * 0.5
  assert np.allclose(new["model"]["backbone"]["conv"]["kernel"], decayed)
  assert np.allclose(new["model"]["head"]["kernel"], decayed)
  for leaf in (new["model"]["backbone"]["bn1"]["scale"], new["model"]["backbone"]["bn1"]["bias"],
               new["model"]["head"]["bias"], new["proxies"]):
    assert np.all(leaf == 1.0)


def test_cosine_and_step_schedules():
  cosine = optim_config(schedule="cosine", warmup_epochs=0, learning_rate=1.0)
  _, schedules = make_optimizer(cosine, trainable_tree(), total_steps=10, steps_per_epoch=1)
  assert float(schedules["head"](0)) == pytest.approx(1.0)
  assert float(schedules["head"](10)) == pytest.approx(0.0, abs=1e-6)
  stepped = optim_config(schedule="step", step_epochs=(2,), step_gamma=0.1, warmup_epochs=0,
                         learning_rate=1.0)
  _, schedules = make_optimizer(stepped, trainable_tree(), total_steps=10, steps_per_epoch=3)
  assert float(schedules["head"](5)) == pytest.approx(1.0)
  assert float(schedules["head"](6)) == pytest.approx(0.1)


@pytest.mark.parametrize("clip, manual", [
    ("value", lambda g: jnp.clip(g, -0.5, 0.5)),
    ("norm", lambda g: optax.clip_by_global_norm(0.5).update(g, None)[0])])
def test_clipping_comes_before_adam(clip, manual):
  params = trainable_tree()
  clipped, _ = make_optimizer(optim_config(clip=clip, clip_threshold=0.5, warmup_epochs=0),
                              params, total_steps=10, steps_per_epoch=1)
  plain, _ = make_optimizer(optim_config(clip="none", warmup_epochs=0), params,
                            total_steps=10, steps_per_epoch=1)
  states = [clipped.init(params), plain.init(params)]
  rng = np.random.default_rng(0)
  for _ in range(3):
    grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 3, x.shape), jnp.float32), params)
    want = manual(grads) if clip == "norm" else jax.tree.map(manual, grads)
    got, states[0] = clipped.update(grads, states[0], params)
    expected, states[1] = plain.update(want, states[1], params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, expected)


@pytest.mark.parametrize("bad", [dict(schedule="linear"), dict(clip="max"),
                                 dict(weight_decay_style="l1")])
def test_bad_values_are_named(bad):
  config = default_config.get_config()
  config.optim.update(bad)
  with pytest.raises(ValueError, match=next(iter(bad))):
    validation.validate(config, device_count=1)


def test_step_decays_fall_on_the_same_epoch_for_every_group_after_a_warmup():
  """As torch's StepLR over all parameter groups: the backbone's warm-up does not shift its
  decays (Proxy Anchor: warm-up 5 epochs, decay every 5)."""
  optim = optim_config(learning_rate=1.0, warmup_epochs=5, schedule="step", step_epochs=(5, 10),
                       step_gamma=0.5)
  _, schedules = make_optimizer(optim, trainable_tree(), total_steps=60, steps_per_epoch=2)
  assert float(schedules["backbone"](9)) == 0.0
  for group in ("backbone", "head"):
    assert float(schedules[group](10)) == pytest.approx(0.5), group
    assert float(schedules[group](20)) == pytest.approx(0.25), group


def test_loss_parameters_get_their_own_rate_and_group():
  """HIST's network at lr x loss_params_lr_mult, its variances at the proxies' rate without
  weight decay; the network's kernels decay, its norm and biases do not."""
  optim = optim_config(learning_rate=1e-3, warmup_epochs=0, loss_params_lr_mult=5.0,
                       proxy_lr_mult=100.0, weight_decay=0.0)
  params = dict(trainable_tree(),
                loss={"proxies": {"log_variances": jnp.ones((4, 2))},
                      "hgnn": {"theta1": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)},
                               "bn": {"scale": jnp.ones(3)}}})
  optimizer, schedules = make_optimizer(optim, params, total_steps=10, steps_per_epoch=1)
  assert float(schedules["loss"](0)) == pytest.approx(5e-3)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  # Adam's first step moves every coordinate by -lr (unit gradients, zero decay).
  for leaf in jax.tree.leaves(updates["loss"]["hgnn"]):
    np.testing.assert_allclose(leaf, -5e-3, rtol=1e-4)
  np.testing.assert_allclose(updates["loss"]["proxies"]["log_variances"], -0.1, rtol=1e-4)
  np.testing.assert_allclose(updates["model"]["head"]["kernel"], -1e-3, rtol=1e-4)

  decaying = optim_config(learning_rate=0.1, warmup_epochs=0, weight_decay=0.5,
                          loss_params_lr_mult=1.0)
  optimizer, _ = make_optimizer(decaying, params, total_steps=10, steps_per_epoch=1)
  zero = jax.tree.map(jnp.zeros_like, params)
  moved = optax.apply_updates(params, optimizer.update(zero, optimizer.init(params), params)[0])
  assert np.allclose(moved["loss"]["hgnn"]["theta1"]["kernel"], 1.0 - 0.1 * 0.5)
  for leaf in (moved["loss"]["hgnn"]["theta1"]["bias"], moved["loss"]["hgnn"]["bn"]["scale"],
               moved["loss"]["proxies"]["log_variances"]):
    assert np.all(leaf == 1.0)


def test_coupled_weight_decay_is_torch_adam_with_l2():
  """weight_decay_style="coupled": torch.optim.Adam(weight_decay=wd) in float64, step by step,
  on the decayed leaves; proxies and biases get plain Adam."""
  lr, wd, b1, b2, eps = 1e-2, 0.3, 0.9, 0.999, 1e-8
  optim = optim_config(learning_rate=lr, weight_decay=wd, warmup_epochs=0,
                       weight_decay_style="coupled")
  params = trainable_tree()
  optimizer, _ = make_optimizer(optim, params, total_steps=10, steps_per_epoch=1)
  state = optimizer.init(params)
  rng = np.random.default_rng(0)
  kernel = np.ones((3, 2))
  bias, m, v, m_bias, v_bias = np.ones(2), 0.0, 0.0, 0.0, 0.0
  for t in range(1, 4):
    grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)
    updates, state = optimizer.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    g = np.asarray(grads["model"]["head"]["kernel"], np.float64) + wd * kernel
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
    kernel = kernel - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    g = np.asarray(grads["model"]["head"]["bias"], np.float64)
    m_bias, v_bias = b1 * m_bias + (1 - b1) * g, b2 * v_bias + (1 - b2) * g**2
    bias = bias - lr * (m_bias / (1 - b1**t)) / (np.sqrt(v_bias / (1 - b2**t)) + eps)
    np.testing.assert_allclose(params["model"]["head"]["kernel"], kernel, rtol=1e-5)
    np.testing.assert_allclose(params["model"]["head"]["bias"], bias, rtol=1e-5)


def test_no_loss_group_without_loss_parameters():
  _, schedules = make_optimizer(optim_config(), trainable_tree(), total_steps=10,
                                steps_per_epoch=1)
  assert set(schedules) == {"backbone", "head", "proxies"}


def test_frozen_parameters_never_move():
  optim = optim_config(learning_rate=0.1, warmup_epochs=0, weight_decay=0.1,
                       frozen="model/backbone/conv")
  params = trainable_tree()
  optimizer, _ = make_optimizer(optim, params, total_steps=10, steps_per_epoch=1)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  moved = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(moved["model"]["backbone"]["conv"]["kernel"],
                                params["model"]["backbone"]["conv"]["kernel"])
  assert not np.allclose(moved["model"]["head"]["kernel"], params["model"]["head"]["kernel"])
