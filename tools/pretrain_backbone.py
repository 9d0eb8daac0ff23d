r"""Pretrains the demo's tiny backbone by glyph classification and writes its weights.

The offline analogue of ImageNet pretraining for the demo set: ``resnet50_tiny`` (the demo
config's backbone, 64 px, grayscale replicated to RGB as ``pfml_jax/data/demo.py`` delivers it)
learns softmax classification of the characters of ``tools/build_pretrain_set.py``, none of
them a demo class. One image per class (a font face it draws) is held out for the accuracy.
The backbone is written as ``.safetensors`` with torchvision ResNet key names and tensor
layouts (OIHW convolutions, ``running_mean``/``running_var``), the layout
``pfml_jax/models/pretrained.py`` imports, so ``--config.model.pretrained=FILE`` loads it.

    python -m tools.build_pretrain_set --out /tmp/glyph_pretrain.npz
    python -m tools.pretrain_backbone --data /tmp/glyph_pretrain.npz \
        --out pfml_jax/data/demo_assets/glyph_backbone.safetensors
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags
from flax import traverse_util
from safetensors.numpy import save_file

from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.models import export_weights, make_embedding_model
from pfml_jax.models.embedding import EmbeddingModel
from pfml_jax.models.pretrained import LAYOUTS, checkpoint_key
from pfml_jax.models.registry import get_backbone_spec
from tools import build_pretrain_set

BACKBONE = "resnet50_tiny"  # configs/demo.py
PAD = 4  # random translation by up to this many pixels, on top of the set's random placement


def held_out_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Indices (train, held-out): one random image of every class is held out."""
  rng = np.random.default_rng(seed)
  held = np.array([rng.choice(np.flatnonzero(labels == c)) for c in range(labels.max() + 1)])
  return np.setdiff1d(np.arange(len(labels)), held), held


def to_rgb(pixels: np.ndarray) -> np.ndarray:
  return np.repeat(pixels[..., None], 3, axis=-1)  # as demo.py's ArrayImageSource


def torch_layout(variables) -> dict[str, np.ndarray]:
  """The backbone's params and batch_stats under torchvision keys, in torch's layouts."""
  layout = LAYOUTS[get_backbone_spec(BACKBONE).weight_layout]
  tensors = {}
  for collection in ("params", "batch_stats"):
    flat = traverse_util.flatten_dict(dict(variables[collection]["backbone"]))
    for path, value in flat.items():
      value = np.asarray(value, np.float32)
      if path[-1] == "kernel":  # HWIO -> OIHW (the inverse of pretrained.to_flax)
        value = value.transpose(3, 2, 0, 1)
      tensors[checkpoint_key(path, layout)] = np.ascontiguousarray(value)
  return tensors


def train(data: dict, steps: int, batch_size: int, learning_rate: float, weight_decay: float,
          seed: int, log=print):
  """Trains backbone + linear classifier; returns (variables, held-out top-1, history)."""
  labels = data["labels"].astype(np.int32)
  num_classes = int(labels.max()) + 1
  train_index, held_index = held_out_split(labels, seed)
  images = to_rgb(data["pixels"])
  model = make_embedding_model(BACKBONE, embedding_dim=None)
  key = jax.random.key(seed)
  variables = model.init(key, jnp.zeros((1, 64, 64, 3), jnp.uint8))
  classifier = {"kernel": jnp.zeros((get_backbone_spec(BACKBONE).feature_dim, num_classes)),
                "bias": jnp.zeros((num_classes,))}
  params = {"backbone": variables["params"], "classifier": classifier}
  schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, steps // 20, steps)
  # Decoupled weight decay on kernels only, as the fine-tuning recipes (not on norms, biases).
  decay_mask = jax.tree_util.tree_map_with_path(
      lambda path, _: jax.tree_util.keystr(path).endswith("['kernel']"), params)
  optimizer = optax.adamw(schedule, weight_decay=weight_decay, mask=decay_mask)
  opt_state = optimizer.init(params)
  batch_stats = variables["batch_stats"]

  def logits_of(params, batch_stats, x, train):
    out = model.apply({"params": params["backbone"], "batch_stats": batch_stats}, x, train,
                      method=EmbeddingModel.features, mutable=["batch_stats"] if train else False)
    features, updates = out if train else (out, {"batch_stats": batch_stats})
    return features @ params["classifier"]["kernel"] + params["classifier"]["bias"], updates

  def augment(rng, x):
    padded = jnp.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)), constant_values=255)
    shifts = jax.random.randint(rng, (x.shape[0], 2), 0, 2 * PAD + 1)
    return jax.vmap(lambda im, s: jax.lax.dynamic_slice(im, (s[0], s[1], 0), (64, 64, 3)))(
        padded, shifts)

  @jax.jit
  def step(params, batch_stats, opt_state, rng, x, y):
    def loss_fn(params):
      logits, updates = logits_of(params, batch_stats, augment(rng, x), True)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, (updates["batch_stats"], jnp.mean(jnp.argmax(logits, -1) == y))
    (loss, (batch_stats, accuracy)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss, accuracy

  @jax.jit
  def predict(params, batch_stats, x):
    return jnp.argmax(logits_of(params, batch_stats, x, False)[0], -1)

  def held_out_accuracy():
    hits = 0
    for start in range(0, len(held_index), 512):
      chunk = held_index[start:start + 512]
      hits += int(np.sum(np.asarray(predict(params, batch_stats, images[chunk]))
                         == labels[chunk]))
    return hits / len(held_index)

  rng = np.random.default_rng(seed)
  order, position, history, started = rng.permutation(train_index), 0, [], time.time()
  for number in range(steps):
    if position + batch_size > len(order):
      order, position = rng.permutation(train_index), 0
    batch = order[position:position + batch_size]
    position += batch_size
    params, batch_stats, opt_state, loss, accuracy = step(
        params, batch_stats, opt_state, jax.random.fold_in(key, number), images[batch],
        labels[batch])
    if (number + 1) % max(steps // 10, 1) == 0 or number + 1 == steps:
      entry = {"step": number + 1, "loss": float(loss), "train_batch_top1": float(accuracy),
               "held_out_top1": held_out_accuracy(), "seconds": round(time.time() - started)}
      history.append(entry)
      log(json.dumps(entry))
  return ({"params": params["backbone"], "batch_stats": batch_stats}, history[-1]["held_out_top1"],
          history)


_FLAGS = flags.FlagValues()
flags.DEFINE_string("data", "/tmp/glyph_pretrain.npz", "build_pretrain_set's .npz",
                    flag_values=_FLAGS)
flags.DEFINE_string("out", "pfml_jax/data/demo_assets/glyph_backbone.safetensors",
                    "the weights written", flag_values=_FLAGS)
flags.DEFINE_integer("steps", 800, "training steps", flag_values=_FLAGS)
flags.DEFINE_integer("batch_size", 256, "images per step", flag_values=_FLAGS)
flags.DEFINE_float("learning_rate", 3e-3, "AdamW rate", flag_values=_FLAGS)
flags.DEFINE_float("weight_decay", 1e-4, "AdamW decoupled weight decay", flag_values=_FLAGS)
flags.DEFINE_integer("seed", 0, "init and batch seed", flag_values=_FLAGS)


def main(argv: list[str] | None = None) -> None:
  if parse_tool_flags(_FLAGS, argv, __doc__):
    fail("pretrain_backbone takes flags only (--help lists them).")
  settings = {name: _FLAGS[name].value for name in ("data", "out", "steps", "batch_size",
                                                     "learning_rate", "weight_decay", "seed")}
  data = build_pretrain_set.load(_FLAGS.data)
  variables, accuracy, history = train(data, _FLAGS.steps, _FLAGS.batch_size,
                                       _FLAGS.learning_rate, _FLAGS.weight_decay, _FLAGS.seed)
  save_file(torch_layout(variables), _FLAGS.out, metadata={
      "pfml_jax_backbone": BACKBONE, "held_out_top1": f"{accuracy:.4f}",
      "classes": str(len(data["code_points"])), "images": str(len(data["labels"])),
      "code_points": " ".join(f"{c:X}" for c in data["code_points"]),
      "settings": json.dumps(settings)})
  size = export_weights.verify(_FLAGS.out, BACKBONE)
  print(json.dumps({"out": _FLAGS.out, "held_out_top1": accuracy, "backbone_values": size,
                    "bytes": os.path.getsize(_FLAGS.out), "history": history}))

if __name__ == "__main__":
  main()
