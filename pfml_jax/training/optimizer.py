"""AdamW with parameter groups: backbone, head, proxies and the loss's own parameters.

Each group has its own learning-rate multiplier; the backbone's rate is zero during the warm-up
epochs (so the step compiles once and the optimizer state keeps its shape); weight decay,
decoupled (AdamW, the default) or coupled (torch Adam's L2 on the gradient, HIST's recipe),
skips proxies, normalisation parameters, biases and ViT tokens/position embeddings.
Parameters whose path matches ``optim.frozen`` (a regex, e.g. Hyp-DML's frozen patch
embedding) are never updated.
"""

import re

import jax.numpy as jnp
import ml_collections
import optax
from flax import traverse_util

GROUPS = ("backbone", "head", "proxies", "loss")
LR_MULTIPLIER = {"backbone": "backbone_lr_mult", "head": "head_lr_mult",
                 "proxies": "proxy_lr_mult", "loss": "loss_params_lr_mult"}
# Leaves that never get weight decay (besides every proxy).
NO_DECAY = re.compile(r"(bn|norm|Norm)[^/]*/|(^|/)bias$|cls_token|pos_embed")


def group_of(path: str) -> str:
  """'backbone', 'head', 'proxies' or 'loss' for a '/'-joined path of the trainable tree.

  The loss's own parameters (``trainable["loss"]``, e.g. HIST's hypergraph network) form the
  'loss' group, except their "proxies" subtree (e.g. HIST's class variances), which trains
  with the proxies.
  """
  parts = path.split("/")
  if parts[0] == "proxies" or parts[:2] == ["loss", "proxies"]:
    return "proxies"
  if parts[0] == "loss":
    return "loss"
  if parts[0] == "model" and len(parts) > 1 and parts[1] in ("backbone", "head"):
    return parts[1]
  raise ValueError(f"Parameter {path!r} belongs to no optimizer group {GROUPS}; the model's "
                   "params must have top-level 'backbone' and 'head' subtrees.")


def _path_labels(trainable, fn):
  flat = traverse_util.flatten_dict(trainable, sep="/")
  return traverse_util.unflatten_dict({k: fn(k) for k in flat}, sep="/")


def learning_rate_schedule(optim: ml_collections.ConfigDict, group: str, total_steps: int,
                           steps_per_epoch: int) -> optax.Schedule:
  """The schedule of one group: base rate x multiplier x shape, zero for a frozen backbone."""
  peak = optim.learning_rate * optim[LR_MULTIPLIER[group]]
  if optim.schedule == "constant":
    shape = optax.constant_schedule(peak)
  elif optim.schedule == "cosine":
    shape = optax.cosine_decay_schedule(peak, max(1, total_steps))
  else:  # "step" (settings/validation.py checked the name)
    boundaries = {int(e * steps_per_epoch): optim.step_gamma for e in optim.step_epochs}
    shape = optax.piecewise_constant_schedule(peak, boundaries)
  frozen_steps = int(optim.warmup_epochs * steps_per_epoch) if group == "backbone" else 0
  if frozen_steps <= 0:
    return shape
  # Zero during the warm-up, then the shape at the absolute step (decays fall on the same
  # epochs for every group, as torch's StepLR over all parameter groups).
  return lambda step: jnp.where(step < frozen_steps, 0.0, shape(step))


def _adam(optim, schedule, weight_decay, mask) -> optax.GradientTransformation:
  """AdamW (decoupled decay), or Adam on gradient + weight_decay x w (torch Adam's
  ``weight_decay``: the decay is rescaled by Adam's moments like the gradient)."""
  if optim.weight_decay_style == "decoupled":
    return optax.adamw(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps,
                       weight_decay=weight_decay, mask=mask)
  return optax.chain(optax.add_decayed_weights(weight_decay, mask),
                     optax.scale_by_adam(b1=optim.b1, b2=optim.b2, eps=optim.eps),
                     optax.scale_by_learning_rate(schedule))


def make_optimizer(optim: ml_collections.ConfigDict, trainable, total_steps: int,
                   steps_per_epoch: int) -> tuple[optax.GradientTransformation, dict]:
  """The optimizer for the trainable tree {"model": {"backbone", "head"}, "proxies"} (and
  "loss" for a loss with parameters of its own).

  Returns:
    (transformation, schedules by group) — the schedules are logged by the trainer; the
    'loss' group exists only when the tree has a "loss" subtree.
  """
  groups_present = [g for g in GROUPS if g != "loss" or "loss" in trainable]
  schedules = {g: learning_rate_schedule(optim, g, total_steps, steps_per_epoch)
               for g in groups_present}
  decay_mask = _path_labels(trainable,
                            lambda p: group_of(p) != "proxies" and not NO_DECAY.search(p))
  frozen = re.compile(optim.frozen) if optim.frozen else None
  groups = _path_labels(trainable, lambda p: "frozen" if frozen and frozen.search(p)
                        else group_of(p))
  transforms = {g: _adam(optim, schedules[g], 0.0 if g == "proxies" else optim.weight_decay,
                         decay_mask)
                for g in groups_present}
  transforms["frozen"] = optax.set_to_zero()
  clip = {"none": optax.identity(),
          "value": optax.clip(optim.clip_threshold),
          "norm": optax.clip_by_global_norm(optim.clip_threshold),
          # Unit-wise |g| <= threshold * |w| (Brock et al. 2021): independent of the loss's
          # scale, so rare huge repulsion spikes cannot inflate Adam's second moments.
          "adaptive": optax.adaptive_grad_clip(optim.clip_threshold)}
  return optax.chain(clip[optim.clip], optax.multi_transform(transforms, groups)), schedules
