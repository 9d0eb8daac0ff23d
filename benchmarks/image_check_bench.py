r"""Seconds the image check at read time takes: "header" (the default) vs "decode" (what
``data.skip_corrupt=True`` runs, see ``pfml_jax/data/images.py:drop_unreadable``).

Synthetic noise JPEGs of CUB's typical size (500 x 375), generated here; noise is harder to
decode than photographs, so the decode row is an upper bound. On this repository's 2-core
CPU machine:
    python benchmarks/image_check_bench.py --num_images=1000
"""

import os
import tempfile
import time

import numpy as np
from absl import flags
from PIL import Image

from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.data.images import FileImageSource, find_unreadable


def synthetic_jpegs(root: str, count: int) -> FileImageSource:
  rng = np.random.default_rng(0)
  names = tuple(f"{i}.jpg" for i in range(count))
  for name in names:
    pixels = rng.integers(0, 256, (375, 500, 3), np.uint8)
    Image.fromarray(pixels).save(os.path.join(root, name), quality=90)
  return FileImageSource(root, names)


_FLAGS = flags.FlagValues()
flags.DEFINE_integer("num_images", 1000, "num images", flag_values=_FLAGS)
flags.DEFINE_integer("workers", 8, "checking threads (as read_split)", flag_values=_FLAGS)


def main() -> None:
  if parse_tool_flags(_FLAGS, None, __doc__):
    fail("this benchmark takes flags only (--help lists them).")
  args = _FLAGS
  with tempfile.TemporaryDirectory() as root:
    source = synthetic_jpegs(root, args.num_images)
    for verify in ("header", "decode"):
      start = time.perf_counter()
      find_unreadable(source, verify, workers=args.workers)
      seconds = time.perf_counter() - start
      print(f"{verify}: {seconds:.2f} s for {args.num_images} images "
            f"({1000 * seconds / args.num_images:.2f} ms per image)")


if __name__ == "__main__":
  main()
