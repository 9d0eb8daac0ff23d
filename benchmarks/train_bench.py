"""End-to-end training throughput: the trainer's own jitted step, input pipeline included.

    python benchmarks/train_bench.py                                   # R50 + ViT-S, CUB + SOP
    python benchmarks/train_bench.py --backbones=resnet50_tiny --scales=cub --batch=32 --steps=5
    python benchmarks/train_bench.py --backbones=resnet50 --scales=sop --bn=frozen

Builds the experiment exactly as ``trainer.train_and_evaluate`` does (config -> model, PFML
loss with its proxies, AdamW groups, sharded state, the cached input mode whose crops run on
the device inside the step) on a synthetic split: random 256 x 256 images, CUB scale
(100 training classes, M = 15 proxies) or SOP scale (11,318 classes, M = 2). BatchNorm follows
the configs (frozen at CUB scale, trained at SOP scale) unless ``--bn`` says otherwise. The host
loop feeds real batches (class-balanced indices and crop boxes) each step, as in training. Reports
images per second over ``--steps`` steps after a warm-up.
"""

import json
import time

import jax
import ml_collections
import numpy as np
from absl import flags

from pfml_jax import default_config
from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.data.images import ArrayImageSource
from pfml_jax.data.split import Split
from pfml_jax.parallel.mesh import global_array
from pfml_jax.training import setup

SCALES = {"cub": (100, 15, 60), "sop": (11318, 2, 4)}  # classes, proxies per class, images each


def synthetic_split(num_classes: int, per_class: int, size: int, seed: int = 0) -> Split:
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(num_classes), per_class).astype(np.int32)
  # A few distinct images, repeated: decoding/caching cost without gigabytes of random data.
  pool = rng.integers(0, 256, (64, size, size, 3), dtype=np.uint8)
  source = ArrayImageSource(pool, np.arange(len(labels)) % len(pool))
  return Split(dataset="synthetic", split="train", images=source, labels=labels,
               class_names=tuple(str(c) for c in range(num_classes)),
               class_ids=np.arange(num_classes), keys=tuple(map(str, range(len(labels)))))


def bench_config(backbone: str, scale: str, batch: int, dtype: str, method: str,
                 bn: str) -> ml_collections.ConfigDict:
  config = default_config.get_config()
  config.model.backbone = backbone
  config.model.embedding_dim = 384 if "vit" in backbone or "dino" in backbone else 512
  config.model.dtype = dtype
  config.model.frozen_bn = {"config": scale == "cub", "frozen": True, "trained": False}[bn]
  config.loss.pfml.proxies_per_class = SCALES[scale][1]
  config.loss.pfml.method = method
  config.data.classes_per_batch = batch // 4
  config.data.images_per_class = 4
  config.data.val_classes = 0
  config.optim.warmup_epochs = 0
  config.steps = 10**6
  return config


def bench(backbone, scale, batch, steps, warmup, dtype, method, bn) -> dict:
  classes, _, per_class = SCALES[scale]
  config = bench_config(backbone, scale, batch, dtype, method, bn)
  split = synthetic_split(classes, per_class, 256)
  exp = setup.build(config, splits=(split, None, split))
  train_input = setup.open_train_input(exp, start_step=0)
  start = time.perf_counter()
  train_step, device_data = setup.compile_train_step(exp, train_input)
  state = exp.init(jax.random.key(0))
  batch_sharding = jax.NamedSharding(exp.mesh, jax.P("data"))
  batches = iter(train_input)
  rng = jax.random.key(1)

  def run(count, state):
    for step in range(count):
      host = next(batches)
      device_batch = {k: global_array(v, batch_sharding) for k, v in host.items()}
      state, metrics = train_step(state, device_data, device_batch, jax.random.fold_in(rng, step))
    jax.block_until_ready(state)
    return state, metrics

  state, _ = run(warmup, state)
  setup_s = time.perf_counter() - start
  start = time.perf_counter()
  state, metrics = run(steps, state)
  elapsed = time.perf_counter() - start
  return dict(backbone=backbone, scale=scale, batch=batch, dtype=dtype, method=method,
              frozen_bn=config.model.frozen_bn, steps=steps,
              images_per_s=steps * batch / elapsed, step_ms=1e3 * elapsed / steps,
              setup_s=setup_s, loss=float(metrics["loss"]), device=jax.devices()[0].device_kind,
              devices=jax.device_count(), jax=jax.__version__)


_FLAGS = flags.FlagValues()
flags.DEFINE_string("backbones", "resnet50,vit_s16", "backbones", flag_values=_FLAGS)
flags.DEFINE_string("scales", "cub,sop", "scales", flag_values=_FLAGS)
flags.DEFINE_integer("batch", 256, "images per step", flag_values=_FLAGS)
flags.DEFINE_integer("steps", 50, "timed steps", flag_values=_FLAGS)
flags.DEFINE_integer("warmup", 5, "untimed steps first", flag_values=_FLAGS)
flags.DEFINE_string("dtype", "bfloat16", "dtype", flag_values=_FLAGS)
flags.DEFINE_string("method", "auto", "PFML energy path (see losses)", flag_values=_FLAGS)
flags.DEFINE_enum("bn", "config", ("config", "frozen", "trained"),
                  "BatchNorm: as the configs (frozen at CUB scale only), or everywhere",
                  flag_values=_FLAGS)
flags.DEFINE_string("json", None, "also write the rows to this file", flag_values=_FLAGS)


def main():
  if parse_tool_flags(_FLAGS, None, __doc__):
    fail("this benchmark takes flags only (--help lists them).")
  args = _FLAGS
  rows = []
  for backbone in args.backbones.split(","):
    for scale in args.scales.split(","):
      try:
        row = bench(backbone, scale, args.batch, args.steps, args.warmup, args.dtype,
                    args.method, args.bn)
      except Exception as error:  # keep measuring the other configurations
        print(f"{backbone} {scale}: FAILED {type(error).__name__}: {error}", flush=True)
        continue
      rows.append(row)
      bn = "frozen BN" if row["frozen_bn"] else "trained BN"
      print(f"{backbone:10s} {scale:4s} batch {row['batch']} {row['dtype']} {args.method} {bn}: "
            f"{row['images_per_s']:8.0f} img/s  ({row['step_ms']:.1f} ms/step, setup "
            f"{row['setup_s']:.0f} s, loss {row['loss']:.4g})  [{row['device']} x"
            f"{row['devices']}, jax {row['jax']}]", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
