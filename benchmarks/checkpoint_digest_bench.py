"""What verifying a checkpoint costs: the host copy, the finiteness check and the digest of a
ResNet-50-sized train state (the parameters and AdamW's two moments), per save or restore.

    python benchmarks/checkpoint_digest_bench.py --repeats=3

The state: the real ResNet-50 backbone's parameter shapes (from ``jax.eval_shape`` of its
initialisation, no weights), three copies of them filled with random float32 on the default
device. Prints the seconds of each stage (best of ``--repeats``) and the digest's throughput,
with zlib.crc32 beside the CRC-32C the checkpoints use. Numbers go to docs/benchmarks.md.
"""

import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from pfml_jax.checkpoint.state_digest import array_digest, host_values
from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.models import make_embedding_model


def resnet50_sized_state() -> list[jax.Array]:
  """Random float32 arrays shaped as ResNet-50's parameters, three times (params, mu, nu)."""
  model = make_embedding_model("resnet50", 512)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                             jnp.zeros((1, 224, 224, 3), jnp.uint8),
                                             train=False))["params"]
  keys = iter(jax.random.split(jax.random.key(1), 3 * len(jax.tree.leaves(shapes))))
  return [jax.random.normal(next(keys), s.shape, jnp.float32)
          for _ in range(3) for s in jax.tree.leaves(shapes)]


def best_time(function, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    function()
    times.append(time.perf_counter() - start)
  return min(times)


_FLAGS = flags.FlagValues()
flags.DEFINE_integer("repeats", 3, "repeats", flag_values=_FLAGS)


def main() -> None:
  if parse_tool_flags(_FLAGS, None, __doc__):
    fail("this benchmark takes flags only (--help lists them).")
  args = _FLAGS
  state = jax.block_until_ready(resnet50_sized_state())
  values = host_values(state)
  nbytes = sum(v.nbytes for v in values)
  print(f"state: {len(values)} arrays, {nbytes / 2**20:.0f} MiB")
  stages = {
      "host copy (host_values)": lambda: host_values(state),
      "finiteness (np.isfinite)": lambda: [np.isfinite(v).all() for v in values],
      "digest, CRC-32C (array_digest)": lambda: [array_digest(v) for v in values],
      "digest, zlib.crc32 (for comparison)": lambda: [zlib.crc32(v.reshape(-1).view(np.uint8))
                                                      for v in values],
  }
  for name, function in stages.items():
    seconds = best_time(function, args.repeats)
    print(f"{name}: {seconds:.3f} s ({nbytes / seconds / 2**30:.2f} GiB/s)")


if __name__ == "__main__":
  main()
