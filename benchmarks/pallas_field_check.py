"""One-shot check of the Pallas (Triton) energy path on a CUDA GPU: exactness, speed, tiles.

    python benchmarks/pallas_field_check.py            # one CUDA GPU, about 4 minutes
    python benchmarks/pallas_field_check.py --smoke    # any machine: tiny sizes, interpreted

Sections, each line tagged:
  [env]    jax version and device.
  [check]  pallas (and pallas_screen) against block_sparse, dense and, at CUB scale, the float64
           reference: energy relative difference and gradient max difference over the largest
           gradient element; PASS when within 1e-5 and 1e-4 (the issue's exactness bar).
  [time]   energy + gradients per call (median) and per step inside a jitted loop (what training
           pays), with XLA's peak memory: block_sparse, pallas_screen (spread only), pallas.
  [screen] the screen alone at SOP scale: XLA's bf16 screen vs the Pallas screen kernel.
  [config] pallas in-loop time for other kernel configurations (tile sizes, warps, stages,
           exact rows and splits; the default is in [time]); a configuration that fails to
           compile prints its error and the run goes on.
The last line counts the checks: "pallas_field_check: N passed, M failed".
"""

import sys
import time
import traceback
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (float64 reference)

from benchmarks.loss_bench import bench, make_inputs  # noqa: E402
from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.losses import EnergyExecution, pallas_field, potential_energy  # noqa: E402
from pfml_jax.losses.block_sparse_field import _screen  # noqa: E402
from pfml_jax.losses.potentials import FieldParams  # noqa: E402
from tests.losses import field_reference  # noqa: E402

ENERGY_RTOL, GRAD_TOL = 1e-5, 1e-4
# name: (KernelConfig overrides, scales to time). The default config is timed in [time]; in
# brackets, registers per thread from ptxas (Triton 3.9, sm_90) of the default SOP kernels:
# screen 128x64, 8 warps, 3 stages [172]; exact 16 rows, 16 warps [64].
CONFIGS = {
    "screen64x64w4": (dict(screen_rows=64, screen_cols=64, screen_warps=4), ("sop",)),  # [178]
    "screen128x128": (dict(screen_cols=128), ("sop",)),  # [255, spills a little]
    "screen_depth128": (dict(screen_depth=128), ("sop",)),  # [195]
    "exact32rows": (dict(exact_rows=32), ("cub", "sop")),  # two rows per warp [122]
    "exact_splits8": (dict(exact_splits=8), ("cub",)),  # busy rows over more programs
}


def energy_and_grads(scale, layout, method, **kwargs):
  embeddings, labels, proxies, proxy_labels = make_inputs(scale, layout)
  fn = jax.jit(jax.value_and_grad(
      lambda e, p: potential_energy(e, labels, p, proxy_labels,
                                    execution=EnergyExecution(method, **kwargs)),
      argnums=(0, 1)))
  energy, grads = fn(embeddings, proxies)
  return float(energy), np.concatenate([np.asarray(g, np.float64).ravel() for g in grads])


def float64_reference(scale, layout):
  embeddings, labels, proxies, proxy_labels = make_inputs(scale, layout)
  energy, grad_emb, grad_prox = field_reference.energy_and_grad(
      np.asarray(embeddings), np.asarray(labels), np.asarray(proxies),
      np.asarray(proxy_labels), 3.0, 0.2, 0.2)
  return energy, np.concatenate([grad_emb.ravel(), grad_prox.ravel()])


def run_checks(scales, layouts, kernel_methods, kwargs, with_float64) -> list[bool]:
  results = []
  for scale in scales:
    for layout in layouts:
      references = {"block_sparse": energy_and_grads(scale, layout, "block_sparse"),
                    "dense": energy_and_grads(scale, layout, "dense")}
      if with_float64 and scale == scales[0]:
        references["float64"] = float64_reference(scale, layout)
      for method in kernel_methods:
        try:
          energy, grads = energy_and_grads(scale, layout, method, **kwargs)
        except Exception:  # noqa: BLE001 -- report and go on
          print(f"[check] {scale} {layout} {method}: ERROR\n{traceback.format_exc()}", flush=True)
          results.append(False)
          continue
        for name, (want_energy, want_grads) in references.items():
          rel = abs(energy - want_energy) / abs(want_energy)
          grad = np.max(np.abs(grads - want_grads)) / np.max(np.abs(want_grads))
          ok = bool(rel <= ENERGY_RTOL and grad <= GRAD_TOL)
          results.append(ok)
          print(f"[check] {scale:4s} {layout:9s} {method:13s} vs {name:12s} U={energy:.8e} "
                f"energy rel diff {rel:.2e}  grad max diff/largest {grad:.2e}  "
                f"{'PASS' if ok else 'FAIL'}", flush=True)
  return results


def time_methods(scales, layouts, methods, repeats, loop, kwargs):
  for scale in scales:
    for layout in layouts:
      for method in methods:
        try:
          row = bench(scale, layout, method, repeats,
                      max(1, loop // 10) if layout == "collapsed" else loop,
                      **(kwargs if method != "block_sparse" else {}))
        except Exception as error:  # noqa: BLE001 -- report and go on
          print(f"[time] {scale} {layout} {method}: ERROR {type(error).__name__}: "
                f"{str(error)[:2000]}", flush=True)
          continue
        print(f"[time] {scale:4s} {layout:9s} {method:13s} P={row['points']:6d} per call "
              f"{row['median_ms']:8.3f} ms  in loop {row['in_loop_ms']:8.3f} ms  peak "
              f"{row['peak_mb'] or float('nan'):8.1f} MB", flush=True)


def time_screens(scale, repeats, interpret):
  """The screen alone (per call, dispatch included): XLA bf16 screen vs the Pallas kernel."""
  embeddings, _, proxies, proxy_labels = make_inputs(scale, "spread")
  points = np.concatenate([np.asarray(embeddings), np.asarray(proxies)])
  points /= np.linalg.norm(points, axis=1, keepdims=True)
  labels = np.concatenate([np.zeros(len(embeddings), np.int32), np.asarray(proxy_labels)])
  layout = pallas_field.kernel_layout(len(points), 1, pallas_field.DEFAULT_CONFIG)
  pad = layout.padded_size - len(points)
  points = jnp.asarray(np.pad(points, ((0, pad), (0, 0))), jnp.float32)
  labels = jnp.asarray(np.pad(labels, (0, pad), constant_values=-1))
  field = FieldParams()
  screens = {
      "xla": lambda p, l: _screen(p, l, jnp.int32(0), layout, field),
      "pallas": lambda p, l: pallas_field.screen(p, l, jnp.int32(0), layout, field,
                                                 interpret=interpret),
  }
  flags = {}
  for name, fn in screens.items():
    try:
      compiled = jax.jit(fn).lower(points, labels).compile()
      flags[name] = jax.block_until_ready(compiled(points, labels))
      times = []
      for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(points, labels))
        times.append(time.perf_counter() - start)
      print(f"[screen] {scale} {name:6s} median {1e3 * np.median(times):8.3f} ms  active blocks "
            f"{int(np.sum(flags[name][0]))}", flush=True)
    except Exception as error:  # noqa: BLE001 -- report and go on
      print(f"[screen] {scale} {name}: ERROR {type(error).__name__}: {str(error)[:2000]}",
            flush=True)
  if len(flags) == 2:
    print(f"[screen] same counts equal: {bool(np.all(flags['xla'][1] == flags['pallas'][1]))}; "
          "blocks flagged by xla only: "
          f"{int(np.sum(flags['xla'][0] & ~flags['pallas'][0]))}, by pallas only: "
          f"{int(np.sum(~flags['xla'][0] & flags['pallas'][0]))} (both are supersets of the "
          "force-carrying blocks; they may differ on borderline blocks)", flush=True)


def time_configs(scales, repeats, loop, kwargs):
  base = kwargs.get("kernel_config", pallas_field.DEFAULT_CONFIG)._asdict()
  for name, (overrides, config_scales) in CONFIGS.items():
    config = pallas_field.KernelConfig(**{**base, **overrides})
    for scale in [scale for scale in scales if scale in config_scales] or scales[:1]:
      try:
        row = bench(scale, "spread", "pallas", repeats, loop,
                    **{**kwargs, "kernel_config": config})
        print(f"[config] {name:16s} {scale:4s} in loop {row['in_loop_ms']:8.3f} ms  per call "
              f"{row['median_ms']:8.3f} ms  {config}", flush=True)
      except Exception as error:  # noqa: BLE001 -- report and go on
        print(f"[config] {name:16s} {scale:4s} ERROR {type(error).__name__}: "
              f"{str(error)[:1500]}  {config}", flush=True)


_FLAGS = flags.FlagValues()
flags.DEFINE_bool("smoke", False, "tiny sizes with the kernels interpreted (any machine)",
                  flag_values=_FLAGS)
flags.DEFINE_string("skip", "", "comma list of sections to skip: "
                      "check,time,screen,config", flag_values=_FLAGS)


def main():
  if parse_tool_flags(_FLAGS, None, __doc__):
    fail("this benchmark takes flags only (--help lists them).")
  args = _FLAGS
  skip = set(filter(None, args.skip.split(",")))
  # jax >= 0.11 warns on every Pallas Triton call that the backend is deprecated.
  warnings.filterwarnings("ignore", message=".*Pallas Triton backend is deprecated.*")
  print(f"[env] jax {jax.__version__}, device {jax.devices()[0].device_kind} "
        f"({jax.devices()[0].platform}), {jax.device_count()} device(s)", flush=True)
  if args.smoke:
    kwargs = dict(interpret=True, kernel_config=pallas_field.KernelConfig(
        screen_rows=32, screen_cols=16, screen_depth=16, block=16, exact_rows=8))
    check_scales, time_scales, repeats, loop = ["tiny"], ["tiny"], 2, 2
  else:
    kwargs = {}
    check_scales, time_scales, repeats, loop = ["cub", "mid"], ["cub", "sop"], 20, 50
  results = []
  if "check" not in skip:
    results = run_checks(check_scales, ["spread", "collapsed"], ["pallas", "pallas_screen"],
                         kwargs, with_float64=True)
  if "time" not in skip:
    time_methods(time_scales, ["spread"], ["block_sparse", "pallas_screen", "pallas"], repeats,
                 loop, kwargs)
    time_methods(time_scales, ["collapsed"], ["block_sparse", "pallas"], repeats, loop, kwargs)
  if "screen" not in skip:
    time_screens(time_scales[-1], repeats, args.smoke)
  if "config" not in skip:
    time_configs(time_scales, repeats, loop, kwargs)
  print(f"pallas_field_check: {sum(results)} passed, {len(results) - sum(results)} failed",
        flush=True)


if __name__ == "__main__":
  main()
