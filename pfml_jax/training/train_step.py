"""The pure train step: (state, batch, rng) -> (state, metrics)."""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from pfml_jax.losses import Loss
from pfml_jax.training.train_state import TrainState

Batch = dict[str, jax.Array]  # "images": (B, H, W, 3) uint8, "labels": (B,) int32 (< 0: padding)


def make_train_step(model: nn.Module, loss: Loss, optimizer: optax.GradientTransformation,
                    proxy_labels: jax.Array, schedules: dict[str, optax.Schedule],
                    ) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict]]:
  """Builds the step; the caller jits it with shardings and donates the state.

  A step whose loss, gradients or updated parameters are not finite leaves the state unchanged (except ``step``)
  and reports ``finite = False``, so the trainer can stop with the last good state intact.
  """

  def objective(trainable, batch_stats, batch, rng):
    variables = {"params": trainable["model"]}
    if batch_stats:
      variables["batch_stats"] = batch_stats
    embeddings, updates = model.apply(variables, batch["images"], train=True,
                                      mutable=["batch_stats"], rngs={"dropout": rng})
    own_params = {"params": trainable["loss"]} if "loss" in trainable else {}  # HIST's
    proxies = trainable.get("proxies", jnp.zeros((0, embeddings.shape[-1]), jnp.float32))
    value = loss(embeddings, batch["labels"], proxies, proxy_labels, **own_params)
    return value.astype(jnp.float32), updates.get("batch_stats", batch_stats)

  def train_step(state: TrainState, batch: Batch, rng: jax.Array):
    (value, batch_stats), grads = jax.value_and_grad(objective, has_aux=True)(
        state.trainable, state.batch_stats, batch, rng)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.trainable)
    trainable = optax.apply_updates(state.trainable, updates)
    # The updated parameters too: a finite gradient times a huge learning rate can overflow.
    finite = jnp.isfinite(value) & jnp.isfinite(grad_norm) & jax.tree.reduce(
        jnp.logical_and, jax.tree.map(lambda x: jnp.isfinite(x).all(), trainable), True)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    new_state = TrainState(step=state.step + 1,
                           trainable=keep(trainable, state.trainable),
                           batch_stats=keep(batch_stats, state.batch_stats),
                           opt_state=keep(opt_state, state.opt_state))
    metrics = {"loss": value, "grad_norm": grad_norm, "finite": finite}
    floor = loss.floor(batch["labels"], proxy_labels)
    if floor is not None:
      metrics["loss_above_floor"] = value - floor
    metrics.update({f"lr/{group}": schedule(state.step) for group, schedule in schedules.items()})
    return new_state, metrics

  return train_step
