"""Training throughput (img/s) of the backbones: forward + backward + AdamW, one device.

    python benchmarks/backbone_bench.py           # resnet50, vit_s16: batch 256, 224 px, bf16
    python benchmarks/backbone_bench.py --models=resnet50_tiny,vit_tiny --batch=8 --size=64 \
        --steps=2 --repeats=2                     # CPU smoke run

One jitted, donated train step: uint8 images -> the embedding model in train mode (BatchNorm
statistics updated unless --frozen_bn; compute in --dtype, norms, head and loss in float32) ->
a normalised-softmax loss against fixed class proxies -> gradients -> AdamW. Timing: compile,
--warmup steps, then --repeats windows of --steps steps, each window ended by
block_until_ready; img/s = batch x steps / median window time. Numbers go to docs/benchmarks.md.
"""

import json
import re
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
import optax

from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.models import BACKBONES, make_embedding_model

NUM_CLASSES = 100


def make_step(model, optimizer, proxies):
  """(state, images, labels) -> (state, loss); state = (params, batch_stats, opt_state)."""

  def loss_fn(params, batch_stats, images, labels):
    variables = {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}
    embeddings, updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
    logits = 16.0 * embeddings @ proxies.T  # float32: embeddings and proxies are float32
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, updates.get("batch_stats", batch_stats)

  def step(state, images, labels):
    params, batch_stats, opt_state = state
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats, images, labels)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

  return jax.jit(step, donate_argnums=0)


def kernel_counts(compiled) -> dict:
  """Custom calls of the compiled step by target (cuDNN attention, fused convolutions, ...)."""
  targets = re.findall(r'custom_call_target="([^"]+)"', compiled.as_text())
  return {target: targets.count(target) for target in sorted(set(targets))}


def bench(name: str, batch: int, size: int, dtype: str, frozen_bn: bool, attention: str,
          steps: int, warmup: int, repeats: int, **model_kwargs) -> dict:
  """One row: compile time, ms per step, img/s. ``model_kwargs`` go to the backbone."""
  spec = BACKBONES[name]
  kwargs = dict(model_kwargs) if spec.has_batch_norm else {"attention": attention,
                                                           **model_kwargs}
  model = make_embedding_model(name, spec.default_embedding_dim, frozen_bn=frozen_bn,
                               dtype=jnp.dtype(dtype), **kwargs)
  rng = np.random.default_rng(0)
  images = jax.device_put(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
  labels = jax.device_put(rng.integers(0, NUM_CLASSES, batch).astype(np.int32))
  proxies = rng.normal(size=(NUM_CLASSES, spec.default_embedding_dim))
  proxies = jnp.asarray(proxies / np.linalg.norm(proxies, axis=1, keepdims=True), jnp.float32)
  # Values do not matter here; rbg keys compile much faster than threefry on CPU.
  variables = jax.jit(lambda x: model.init(jax.random.key(0, impl="rbg"), x, train=False))(
      images[:1])
  optimizer = optax.adamw(1e-4, weight_decay=1e-4)
  state = (variables["params"], variables.get("batch_stats", {}),
           optimizer.init(variables["params"]))
  step = make_step(model, optimizer, proxies)

  start = time.perf_counter()
  compiled = step.lower(state, images, labels).compile()
  compile_s = time.perf_counter() - start
  kernels = kernel_counts(compiled)
  for _ in range(warmup):
    state, loss = compiled(state, images, labels)
  jax.block_until_ready(state)
  windows = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      state, loss = compiled(state, images, labels)
    jax.block_until_ready((state, loss))
    windows.append(time.perf_counter() - start)
  median = float(np.median(windows))
  # The attention that ran: "auto" falls back to XLA when cuDNN refuses the shapes.
  fused_attention = any(target.startswith("__cudnn$fmha") for target in kernels)
  return dict(model=name, batch=batch, size=size, dtype=dtype, frozen_bn=frozen_bn,
              attention=("n/a" if spec.has_batch_norm else
                         "cudnn" if fused_attention else "xla"),
              compile_s=round(compile_s, 1), step_ms=round(1e3 * median / steps, 2),
              img_per_s=round(batch * steps / median, 1), loss=float(loss),
              device=jax.devices()[0].device_kind, custom_calls=kernels)


_FLAGS = flags.FlagValues()
flags.DEFINE_string("models", "resnet50,vit_s16", "models", flag_values=_FLAGS)
flags.DEFINE_integer("batch", 256, "images per step", flag_values=_FLAGS)
flags.DEFINE_integer("size", 224, "size", flag_values=_FLAGS)
flags.DEFINE_enum("dtype", "bfloat16", ["bfloat16", "float32"], "dtype", flag_values=_FLAGS)
flags.DEFINE_bool("frozen_bn", False, "BatchNorm frozen (CUB/Cars)", flag_values=_FLAGS)
flags.DEFINE_enum("attention", "auto", ["auto", "xla", "cudnn"], "attention", flag_values=_FLAGS)
flags.DEFINE_integer("steps", 20, "steps per timed window", flag_values=_FLAGS)
flags.DEFINE_integer("warmup", 3, "untimed steps first", flag_values=_FLAGS)
flags.DEFINE_integer("repeats", 5, "timed windows (median reported)", flag_values=_FLAGS)
flags.DEFINE_string("json", None, "also write the rows to this file", flag_values=_FLAGS)


def main():
  if parse_tool_flags(_FLAGS, None, __doc__):
    fail("this benchmark takes flags only (--help lists them).")
  args = _FLAGS
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}")
  rows = []
  for name in args.models.split(","):
    row = bench(name, args.batch, args.size, args.dtype, args.frozen_bn, args.attention,
                args.steps, args.warmup, args.repeats)
    print(json.dumps(row), flush=True)
    rows.append(row)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
