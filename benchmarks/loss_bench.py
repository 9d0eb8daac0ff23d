"""Time and peak memory of PFML's energy + gradients, per path, at CUB and SOP scale.

    python benchmarks/loss_bench.py                       # every scale and path that fits
    python benchmarks/loss_bench.py --scales=cub --methods=dense,block_sparse
    python benchmarks/loss_bench.py --methods=block_sparse,pallas      # CUDA GPU: the kernels

Inputs: a batch of B embeddings (classes x images per class) and N x M proxies, either spread
on the sphere as at initialisation ("spread") or all within delta of one point ("collapsed",
where every block carries force and the exact fallback runs). Two times: per call (a jitted
call with its dispatch and sync, median), and in a loop (``--loop`` steps inside one jitted
fori_loop, each step's inputs depending on the last step's gradient, so nothing is hoisted),
which is what a training step pays. Peak memory is XLA's own account of the compiled step
(arguments + outputs + temporaries). Numbers go to docs/benchmarks.md.
"""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.losses import EnergyExecution, potential_energy

SCALES = {  # name: (batch, classes in batch, training classes N, proxies per class M, dim)
    "cub": (100, 25, 100, 15, 512),
    "sop": (100, 25, 11318, 2, 512),
    "mid": (100, 25, 1000, 3, 512),  # between the two, still small enough for the dense path
    "tiny": (20, 5, 20, 2, 24),  # smoke runs on CPU (pallas_field_check.py --smoke)
}


def make_inputs(scale: str, layout: str, seed: int = 0):
  batch, batch_classes, num_classes, per_class, dim = SCALES[scale]
  rng = np.random.default_rng(seed)
  labels = np.repeat(rng.choice(num_classes, batch_classes, replace=False), batch // batch_classes)
  proxy_labels = np.repeat(np.arange(num_classes), per_class)
  if layout == "spread":
    embeddings = rng.normal(size=(batch, dim))
    proxies = rng.normal(size=(len(proxy_labels), dim))
  else:  # collapsed: every point within delta / 2 of one direction
    centre = rng.normal(size=dim)
    centre /= np.linalg.norm(centre)
    embeddings = centre + 0.05 * rng.normal(size=(batch, dim)) / np.sqrt(dim)
    proxies = centre + 0.05 * rng.normal(size=(len(proxy_labels), dim)) / np.sqrt(dim)
  return tuple(jnp.asarray(a) for a in (embeddings.astype(np.float32), labels.astype(np.int32),
                                        proxies.astype(np.float32),
                                        proxy_labels.astype(np.int32)))


def bench(scale: str, layout: str, method: str, repeats: int, loop: int, **loss_kwargs) -> dict:
  """Times energy + gradients; ``loss_kwargs`` go to its EnergyExecution (e.g. kernel_config)."""
  embeddings, labels, proxies, proxy_labels = make_inputs(scale, layout)

  def loss(e, p):
    return potential_energy(e, labels, p, proxy_labels,
                            execution=EnergyExecution(method, **loss_kwargs))

  step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  compiled = step.lower(embeddings, proxies).compile()
  memory = compiled.memory_analysis()
  peak = None
  if memory is not None:
    peak = (memory.argument_size_in_bytes + memory.output_size_in_bytes +
            memory.temp_size_in_bytes)
  jax.block_until_ready(compiled(embeddings, proxies))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(embeddings, proxies))
    times.append(time.perf_counter() - start)
  value = float(compiled(embeddings, proxies)[0])

  @jax.jit
  def steps(e, p):
    def body(_, state):
      e, p = state
      _, (grad_e, grad_p) = jax.value_and_grad(loss, argnums=(0, 1))(e, p)
      return e - 1e-9 * grad_e, p - 1e-9 * grad_p
    return jax.lax.fori_loop(0, loop, body, (e, p))

  jax.block_until_ready(steps(embeddings, proxies))
  start = time.perf_counter()
  jax.block_until_ready(steps(embeddings, proxies))
  in_loop = (time.perf_counter() - start) / loop
  return dict(scale=scale, layout=layout, method=method, points=int(len(labels) + len(proxy_labels)),
              median_ms=1e3 * float(np.median(times)), min_ms=1e3 * float(np.min(times)),
              in_loop_ms=1e3 * in_loop, peak_mb=None if peak is None else peak / 2**20,
              energy=value, device=jax.devices()[0].device_kind)


_FLAGS = flags.FlagValues()
flags.DEFINE_string("scales", "cub,sop", "scales", flag_values=_FLAGS)
flags.DEFINE_string("layouts", "spread,collapsed", "layouts", flag_values=_FLAGS)
flags.DEFINE_string("methods", "dense,block_sparse", "methods", flag_values=_FLAGS)
flags.DEFINE_integer("repeats", 20, "repeats", flag_values=_FLAGS)
flags.DEFINE_integer("loop", 50, "steps per in-loop timing", flag_values=_FLAGS)
flags.DEFINE_integer("max_dense_points", 24000,
                     "skip the dense path above this many points (memory)", flag_values=_FLAGS)
flags.DEFINE_string("json", None, "also write the rows to this file", flag_values=_FLAGS)


def main():
  if parse_tool_flags(_FLAGS, None, __doc__):
    fail("this benchmark takes flags only (--help lists them).")
  args = _FLAGS
  rows = []
  for scale in args.scales.split(","):
    for layout in args.layouts.split(","):
      for method in args.methods.split(","):
        batch, _, classes, per_class, _ = SCALES[scale]
        if method == "dense" and batch + classes * per_class > args.max_dense_points:
          continue
        row = bench(scale, layout, method, args.repeats,
                    max(1, args.loop // 10) if layout == "collapsed" else args.loop)
        rows.append(row)
        print(f"{scale:4s} {layout:9s} {method:13s} P={row['points']:6d} "
              f"per call {row['median_ms']:9.3f} ms  in loop {row['in_loop_ms']:9.3f} ms  "
              f"peak {row['peak_mb'] or float('nan'):9.1f} MB  U={row['energy']:.6e}  "
              f"[{row['device']}]", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
