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

  A step whose loss, gradient or any array of the updated state (parameters, BatchNorm
  statistics, optimizer moments) is not finite leaves the whole state unchanged and reports
  ``finite = False`` and ``finite_arrays``, one flag per array of the state in
  ``jax.tree.leaves`` order (``checkpoint.state_digest.array_names`` names them), so the trainer can stop
  with the last good state intact and say which arrays diverged.
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
    updated = TrainState(step=state.step + 1, trainable=trainable, batch_stats=batch_stats,
                         opt_state=opt_state)
    # Every array of the new state: a finite gradient times a huge learning rate can overflow
    # the parameters, and overflowing activations the BatchNorm running statistics.
    finite_arrays = jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(updated)])
    # In two stages, the statistics checked on the first stage's result: a choice between the
    # new and old statistics that depends on the new ones changes how XLA fuses their update
    # (last-bit differences in the running means against the single-stage guard).
    finite = jnp.isfinite(value) & jnp.isfinite(grad_norm) & _all_finite((trainable, opt_state))
    kept = _keep_where(finite, updated, state)
    finite &= _all_finite(kept.batch_stats)
    new_state = _keep_where(finite, kept, state)
    metrics = {"loss": value, "grad_norm": grad_norm, "finite": finite,
               "finite_arrays": finite_arrays}
    floor = loss.floor(batch["labels"], proxy_labels)
    if floor is not None:
      metrics["loss_above_floor"] = value - floor
    metrics.update({f"lr/{group}": schedule(state.step) for group, schedule in schedules.items()})
    return new_state, metrics

  return train_step


def _all_finite(tree) -> jax.Array:
  return jax.tree.reduce(jnp.logical_and, jax.tree.map(lambda x: jnp.isfinite(x).all(), tree),
                         jnp.bool_(True))


def _keep_where(condition: jax.Array, new, old):
  """``new`` where ``condition``, else ``old``, array by array."""
  return jax.tree.map(lambda n, o: jnp.where(condition, n, o), new, old)
