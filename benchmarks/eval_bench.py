"""Time and peak memory of each retrieval-evaluation backend on a Stanford Online Products-sized set.

    python benchmarks/eval_bench.py                          # SOP size, every backend (GPU host)
    python benchmarks/eval_bench.py --items=6050 --classes=1132 --repeats=2   # small, on a CPU
    python benchmarks/eval_bench.py --backends=jax --nmi     # also time k-means NMI (k = classes)

The set: ``--items`` embeddings of ``--dim`` float32 in ``--classes`` classes of 2-12 items
(SOP's test split: 60,502 x 512, 11,316 classes, mean 5.35), items listed class by class as
Ebay_test.txt lists them; each item is its class centre plus Gaussian noise (``--noise`` sets
how hard retrieval is). Each backend computes R@{1,10,100,1000}, MAP@R and R-Precision through
the public ``retrieval_metrics`` in its own subprocess, so peak memories do not mix:

  cold_s     first call (includes XLA compilation for jax)
  warm_s     median of ``--repeats`` further calls (what an evaluation during training costs)
  stages     warm split: host preparation / ranking (device work + transfers) / metrics
  host_peak  growth of the process's peak RSS over the data alone
  device     XLA's account of the compiled rank step (arguments + outputs + temporaries) and,
             where the platform reports it, the device's peak bytes in use
Finally it says whether all backends returned identical metrics. Numbers go to docs/benchmarks.md.
"""

import functools
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
from absl import flags

from pfml_jax.command_line import fail, parse_tool_flags

KS = (1, 10, 100, 1000)


def sop_like_set(items: int, classes: int, dim: int, noise: float, seed: int = 0):
  """Class sizes in [2, 12] summing to ``items``; embeddings = centre + noise, class-ordered."""
  rng = np.random.default_rng(seed)
  mean_extra = (items - 2 * classes) / (10 * classes)
  if not 0 <= mean_extra <= 1:
    raise ValueError(f"{items} items cannot fill {classes} classes of 2-12 items.")
  sizes = 2 + rng.binomial(10, mean_extra, classes)
  while sizes.sum() != items:  # nudge random classes until the total is exact
    step = 1 if sizes.sum() < items else -1
    movable = np.flatnonzero((sizes + step >= 2) & (sizes + step <= 12))
    sizes[rng.choice(movable, min(abs(items - sizes.sum()), len(movable)), replace=False)] += step
  labels = np.repeat(np.arange(classes), sizes).astype(np.int32)
  centres = rng.standard_normal((classes, dim), np.float32)
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)
  embeddings = centres[labels]
  embeddings += (noise / np.sqrt(dim)) * rng.standard_normal((items, dim), np.float32)
  return embeddings, labels


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_backend(args) -> dict:
  """One backend in this process: times, memory, metrics."""
  import jax  # pylint: disable=g-import-not-at-top
  from pfml_jax.evaluation import jax_ranks, retrieval  # pylint: disable=g-import-not-at-top
  from pfml_jax.evaluation.rank_metrics import metrics_from_ranks  # pylint: disable=g-import-not-at-top
  from pfml_jax.evaluation.ranking_problem import make_problem  # pylint: disable=g-import-not-at-top

  embeddings, labels = sop_like_set(args.items, args.classes, args.dim, args.noise)
  baseline_mb = peak_rss_mb()
  backend = args.child
  if backend == "jax":
    backend = functools.partial(jax_ranks.relevant_ranks, block_bytes=args.block_mb * 2**20)

  start = time.perf_counter()
  metrics = retrieval.retrieval_metrics(embeddings, labels, KS, backend=backend)
  cold = time.perf_counter() - start
  warm, stages = [], []
  for _ in range(args.repeats):
    start = time.perf_counter()
    retrieval.retrieval_metrics(embeddings, labels, KS, backend=backend)
    warm.append(time.perf_counter() - start)
    # The same call in its three stages.
    t0 = time.perf_counter()
    units = retrieval.unit_rows(embeddings, "embeddings")
    problem = make_problem(units, labels, units, labels, np.arange(len(units), dtype=np.int32), KS)
    t1 = time.perf_counter()
    ranks = retrieval.BACKENDS[args.child](problem) if args.child != "jax" else backend(problem)
    t2 = time.perf_counter()
    metrics_from_ranks(ranks, problem.num_relevant, KS)
    stages.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
  row = dict(backend=args.child, items=args.items, classes=args.classes, dim=args.dim,
             cold_s=cold, warm_s=statistics.median(warm) if warm else None,
             stages_s=[statistics.median(s) for s in zip(*stages)] if stages else None,
             host_peak_mb=peak_rss_mb() - baseline_mb, metrics=metrics,
             device=f"{jax.devices()[0].device_kind} x{jax.device_count()}")
  units = retrieval.unit_rows(embeddings, "embeddings")
  if args.child == "jax":
    problem = make_problem(units, labels, units, labels, np.arange(len(units), dtype=np.int32), KS)
    row.update(_jax_memory(jax, jax_ranks, problem, args.block_mb * 2**20))
  if args.nmi:
    start = time.perf_counter()
    row["nmi"] = retrieval.clustering.nmi_score(units, labels)
    row["nmi_s"] = time.perf_counter() - start
  return row


def _jax_memory(jax, jax_ranks, problem, block_bytes) -> dict:
  """XLA's memory account of the compiled rank step, and the device's peak if it reports one."""
  mesh = jax_ranks.default_mesh()
  rows = jax_ranks.block_rows(len(problem.queries), len(problem.gallery), mesh.size,
                              block_bytes)
  padded = -(-len(problem.queries) // (mesh.size * rows)) * mesh.size * rows
  shapes = [jax.ShapeDtypeStruct((padded, problem.queries.shape[1]), np.float32),
            jax.ShapeDtypeStruct((padded, problem.relevant_items().shape[1]), np.int32),
            jax.ShapeDtypeStruct((padded,), np.int32),
            jax.ShapeDtypeStruct(problem.gallery.shape, np.float32)]
  specs = [jax.P(tuple(mesh.axis_names))] * 3 + [jax.P()]
  shapes = [jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=jax.NamedSharding(mesh, p))
            for s, p in zip(shapes, specs)]
  compiled = jax_ranks._sharded_ranks(mesh, rows).lower(*shapes).compile()  # pylint: disable=protected-access
  analysis = compiled.memory_analysis()
  out = dict(block_rows=rows)
  if analysis is not None:
    out["xla_step_mb"] = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
                          + analysis.temp_size_in_bytes) / 2**20
    out["xla_temp_mb"] = analysis.temp_size_in_bytes / 2**20
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
  return out


_FLAGS = flags.FlagValues()
flags.DEFINE_integer("items", 60502, "items", flag_values=_FLAGS)
flags.DEFINE_integer("classes", 11316, "classes", flag_values=_FLAGS)
flags.DEFINE_integer("dim", 512, "dim", flag_values=_FLAGS)
flags.DEFINE_float("noise", 2.4, "noise norm relative to the unit class centre", flag_values=_FLAGS)
flags.DEFINE_string("backends", "jax,faiss", "backends", flag_values=_FLAGS)
flags.DEFINE_integer("repeats", 3, "warm calls per backend", flag_values=_FLAGS)
flags.DEFINE_integer("block_mb", 256, "jax backend: similarity block per device (MiB)",
                     flag_values=_FLAGS)
flags.DEFINE_bool("nmi", False, "also time k-means NMI (jax child)", flag_values=_FLAGS)
flags.DEFINE_string("json", None, "also write the rows to this file", flag_values=_FLAGS)
flags.DEFINE_string("child", None, "internal: set by the benchmark for its child process",
                    flag_values=_FLAGS)


def main():
  if parse_tool_flags(_FLAGS, None, __doc__):
    fail("this benchmark takes flags only (--help lists them).")
  args = _FLAGS
  if args.child:
    print(json.dumps(run_backend(args)))
    return

  rows = []
  for backend in args.backends.split(","):
    argv = [f"--items={args.items}", f"--classes={args.classes}", f"--dim={args.dim}",
            f"--noise={args.noise}", f"--repeats={args.repeats}", f"--block_mb={args.block_mb}",
            f"--child={backend}"] + (["--nmi"] if args.nmi and backend == "jax" else [])
    done = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if done.returncode:
      sys.exit(f"The {backend} run failed:\n{done.stderr}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    rows.append(row)
    stages = row["stages_s"] or [float("nan")] * 3
    print(f"{backend:6s} N={row['items']} cold {row['cold_s']:7.2f} s  warm "
          f"{row['warm_s'] or float('nan'):7.2f} s  (prep {stages[0]:.2f} / rank {stages[1]:.2f} "
          f"/ metrics {stages[2]:.2f})  host peak +{row['host_peak_mb']:.0f} MB  "
          + "  ".join(f"{k} {row[k]:.0f}" for k in ("xla_step_mb", "device_peak_mb") if k in row)
          + f"  [{row['device']}]", flush=True)
    print("       " + "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in row["metrics"].items()), flush=True)
    if "nmi" in row:
      print(f"       nmi={row['nmi']:.4f} in {row['nmi_s']:.2f} s", flush=True)
  if len(rows) > 1:
    same = all(r["metrics"] == rows[0]["metrics"] for r in rows)
    print("identical metrics across backends:", same)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
