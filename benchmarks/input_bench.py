r"""Images per second the training input delivers, per mode.

grain: host batches (decode + crop + flip in threads / worker processes).
cached: host batch plans + the on-device crop (``device_images`` under jit), timed until the
images are ready on the accelerator; the one-time cache build is timed separately.

CPU (this repo's 2-core CI machine), synthetic JPEGs generated here:
    python benchmarks/input_bench.py --dataset=synthetic --modes=grain,cached --steps=20
The shipped demo set:
    python benchmarks/input_bench.py --dataset=demo --image_size=48 --batch_size=128
One H100 (16-core host), CUB-sized synthetic JPEGs or a real copy:
    python benchmarks/input_bench.py --dataset=synthetic --num_images=5864 --batch_size=512 \
        --workers=14 --threads=2 --steps=50
    python benchmarks/input_bench.py --dataset=cub200 --root=/data/CUB_200_2011 --workers=14
Target: >= 6,000 img/s (a ResNet-50 step on one H100 must never wait for input).
"""

import os
import tempfile
import time

import jax
import numpy as np
from absl import flags
from PIL import Image

from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.data import (CachedMode, Crops, GrainMode, SamplerSpec, make_train_input,
                           read_split)


def synthetic_split(root: str, num_images: int, classes: int, seed: int = 0):
  """Training split of CUB-like JPEGs (sizes 300-500 x 225-500, smooth content) in
  ``classes`` class folders (plus one one-image test class the folder layout needs)."""
  folder = os.path.join(root, f"synthetic_{num_images}_{classes}")
  if not os.path.isdir(folder):
    rng = np.random.default_rng(seed)
    for i in range(num_images + 1):
      width, height = int(rng.integers(300, 500)), int(rng.integers(225, 500))
      small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
      image = Image.fromarray(small).resize((width, height), Image.BICUBIC)
      name = f"class{i % classes:04d}" if i < num_images else "zz_test"
      os.makedirs(os.path.join(folder, name), exist_ok=True)
      image.save(os.path.join(folder, name, f"{i:06d}.jpg"), quality=90)
  return read_split("image_folder", folder, "train",
                    train_classes=[f"class{c:04d}" for c in range(classes)])


def bench(split, args, mode: str) -> dict:
  start = time.perf_counter()
  batches = SamplerSpec("class_balanced", args.batch_size, args.batch_size // args.per_class)
  crops = Crops(args.image_size, scale=(args.scale_min, 1.0), interpolation=args.interpolation)
  how = (GrainMode(args.workers, args.threads) if mode == "grain" else
         CachedMode(args.cache_size or None, args.cache_dir or None,
                    decode_threads=max(args.workers, 1) * max(args.threads, 1)))
  train_input = make_train_input(split, batches, crops, how)
  setup = time.perf_counter() - start
  device_data = train_input.device_data()
  images_of = jax.jit(train_input.device_images)
  iterator = iter(train_input)
  timings = []
  for step in range(args.warmup + args.steps):
    begin = time.perf_counter()
    batch = next(iterator)
    images = images_of(device_data, {k: jax.device_put(v) for k, v in batch.items()})
    images.block_until_ready()
    if step >= args.warmup:
      timings.append(time.perf_counter() - begin)
  seconds = float(np.sum(timings))
  return {"mode": mode, "img_per_s": args.steps * args.batch_size / seconds,
          "ms_per_step": 1e3 * seconds / args.steps, "setup_s": setup}


_FLAGS = flags.FlagValues()
flags.DEFINE_string("dataset", "synthetic",
                    "synthetic | demo | cub200 | cars196 | sop | image_folder | *_tfds",
                    flag_values=_FLAGS)
flags.DEFINE_string("root", "", "dataset root (not for synthetic/demo)", flag_values=_FLAGS)
flags.DEFINE_integer("num_images", 512, "synthetic: training images (CUB train: 5864)",
                     flag_values=_FLAGS)
flags.DEFINE_string("modes", "grain,cached", "modes", flag_values=_FLAGS)
flags.DEFINE_integer("batch_size", 128, "batch size", flag_values=_FLAGS)
flags.DEFINE_integer("per_class", 4, "K images per class", flag_values=_FLAGS)
flags.DEFINE_integer("image_size", 224, "image size", flag_values=_FLAGS)
flags.DEFINE_integer("cache_size", 512, "longest cached side, 0: original sizes "
                     "(config.data.cache_size)", flag_values=_FLAGS)
flags.DEFINE_string("cache_dir", "", "default: next to the data", flag_values=_FLAGS)
flags.DEFINE_float("scale_min", 0.08, "scale min", flag_values=_FLAGS)
flags.DEFINE_string("interpolation", "bilinear", "interpolation", flag_values=_FLAGS)
flags.DEFINE_integer("workers", 0, "grain worker processes", flag_values=_FLAGS)
flags.DEFINE_integer("threads", 2, "decoding threads per process", flag_values=_FLAGS)
flags.DEFINE_integer("steps", 10, "timed steps", flag_values=_FLAGS)
flags.DEFINE_integer("warmup", 3, "untimed steps first", flag_values=_FLAGS)


def main() -> None:
  if parse_tool_flags(_FLAGS, None, __doc__):
    fail("this benchmark takes flags only (--help lists them).")
  args = _FLAGS
  if args.dataset == "synthetic":
    classes = max(args.num_images // 30, args.batch_size // args.per_class)
    split = synthetic_split(os.path.join(tempfile.gettempdir(), "pfml_input_bench"),
                            args.num_images, classes)
  else:
    split = read_split(args.dataset, args.root or None, "train")
  print(f"{args.dataset}: {len(split)} training images, {split.num_classes} classes, "
        f"{os.cpu_count()} CPUs, device {jax.devices()[0].device_kind}")
  for mode in args.modes.split(","):
    result = bench(split, args, mode)
    print(f"  {mode:7s} {result['img_per_s']:9.0f} img/s  {result['ms_per_step']:8.1f} ms/step "
          f"(batch {args.batch_size}, {args.image_size} px; setup {result['setup_s']:.1f} s)")


if __name__ == "__main__":
  main()
