"""Old and new implementations of the backbones side by side: training img/s, one device.

    python benchmarks/backbone_variants.py              # H100: batch 256, 224 px, bf16 (~5 min)
    python benchmarks/backbone_variants.py --tiny       # CPU smoke run (tiny models, 64 px)
    python benchmarks/backbone_variants.py --variants=resnet50/bn-fused,vit_s16/new

Each variant is a backbone, frozen BatchNorm or not, and keyword overrides of the backbone's
fields (``VARIANTS``); the step and the timing are ``backbone_bench.py``'s (forward + backward
+ AdamW, median of --repeats windows of --steps steps after --warmup). Variants run in the
order given; once --budget_s seconds have passed no new variant starts. A variant that fails
to compile is reported and skipped. The table gives img/s, the change against the first variant
of the same group, and the custom calls that show which kernels ran (cuDNN attention "fmha",
cuDNN convolutions with a fused bias/residual/ReLU epilogue "conv+bias").
"""

import json
import sys
import time
import traceback
from pathlib import Path

import flax
import jax
import optax
from absl import flags

from pfml_jax.command_line import fail, parse_tool_flags

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backbone_bench import bench  # noqa: E402  (a sibling script)

# name -> (group, backbone, frozen_bn, backbone fields). The first of a group is its baseline.
VARIANTS: dict[str, tuple[str, str, bool, dict]] = {
    # BatchNorm trained (SOP): the automatic derivative vs the hand-written backward pass.
    "resnet50/bn-autodiff": ("resnet50", "resnet50", False, {}),
    "resnet50/bn-fused": ("resnet50", "resnet50", False, {"batch_norm": "fused"}),
    # ViT-S/16: "old" is the previous code path (cuDNN tried on 197 tokens, falls back to XLA
    # where JAX refuses; JAX's exact GELU); "new" is the default (cuDNN on 200 padded tokens,
    # float32 GELU recomputed in the backward pass).
    "vit_s16/old": ("vit_s16", "vit_s16", False, {"cudnn_token_multiple": 1, "gelu": "jax"}),
    "vit_s16/new": ("vit_s16", "vit_s16", False, {}),
    # BatchNorm frozen (CUB, Cars): a separate normalisation pass vs folded into the conv.
    "resnet50-frozen/unfolded": ("resnet50-frozen", "resnet50", True, {"fold_frozen_bn": False}),
    "resnet50-frozen/folded": ("resnet50-frozen", "resnet50", True, {}),
    # What each ViT change gives alone.
    "vit_s16/pad8-jax-gelu": ("vit_s16", "vit_s16", False, {"gelu": "jax"}),
    "vit_s16/xla-attention": ("vit_s16", "vit_s16", False, {"attention": "xla"}),
}
TINY = {"resnet50": "resnet50_tiny", "vit_s16": "vit_tiny"}
SHORT = {"__cudnn$fmha": "fmha", "__cudnn$convBiasActivationForward": "conv+bias"}


def short_counts(custom_calls: dict) -> str:
  """'fmha 24, conv+bias 69': counts of the custom calls named in SHORT (by prefix)."""
  counts = {}
  for target, count in custom_calls.items():
    for prefix, short in SHORT.items():
      if target.startswith(prefix):
        counts[short] = counts.get(short, 0) + count
  return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "-"


def table(rows: list[dict]) -> str:
  """Markdown table; speed-ups against the first variant of each group."""
  baseline = {}
  lines = ["| variant | frozen BN | fields | compile s | ms/step | img/s | vs group baseline |"
           " kernels |", "|---|---|---|---|---|---|---|---|"]
  for row in rows:
    if "img_per_s" not in row:
      lines.append(f"| {row['variant']} | | {row['fields']} | failed: {row['error']} | | | | |")
      continue
    base = baseline.setdefault(row["group"], row["img_per_s"])
    lines.append(f"| {row['variant']} | {row['frozen_bn']} | {row['fields']} | {row['compile_s']}"
                 f" | {row['step_ms']} | {row['img_per_s']:,.0f} | {row['img_per_s'] / base:.3f}"
                 f" | {short_counts(row['custom_calls'])} |")
  return "\n".join(lines)


_FLAGS = flags.FlagValues()
flags.DEFINE_string("variants", ",".join(VARIANTS),
                    f"comma-separated, in order; any of {list(VARIANTS)}", flag_values=_FLAGS)
flags.DEFINE_bool("tiny", False, "tiny models, batch 8, 64 px, 2 x 2 steps (CPU smoke run)",
                  flag_values=_FLAGS)
flags.DEFINE_integer("batch", 256, "images per step", flag_values=_FLAGS)
flags.DEFINE_integer("size", 224, "size", flag_values=_FLAGS)
flags.DEFINE_enum("dtype", "bfloat16", ["bfloat16", "float32"], "dtype", flag_values=_FLAGS)
flags.DEFINE_integer("steps", 10, "steps per timed window", flag_values=_FLAGS)
flags.DEFINE_integer("warmup", 2, "untimed steps first", flag_values=_FLAGS)
flags.DEFINE_integer("repeats", 3, "timed windows (median reported)", flag_values=_FLAGS)
flags.DEFINE_float("budget_s", 240.0, "start no new variant after this many seconds",
                   flag_values=_FLAGS)
flags.DEFINE_string("json", None, "also write the rows to this file", flag_values=_FLAGS)


def main():
  if parse_tool_flags(_FLAGS, None, __doc__):
    fail("this benchmark takes flags only (--help lists them).")
  args = _FLAGS
  names = args.variants.split(",")
  unknown = [name for name in names if name not in VARIANTS]
  if unknown:
    fail(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
  if args.tiny:
    args.batch, args.size, args.steps, args.warmup, args.repeats = 8, 64, 2, 1, 2
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}, "
        f"batch {args.batch}, {args.size} px, {args.dtype}", flush=True)
  start, rows = time.perf_counter(), []
  for name in names:
    elapsed = time.perf_counter() - start
    if elapsed > args.budget_s:
      print(f"skipped {name}: {elapsed:.0f} s > --budget_s={args.budget_s:.0f}", flush=True)
      continue
    group, backbone, frozen_bn, fields = VARIANTS[name]
    backbone = TINY[backbone] if args.tiny else backbone
    row = dict(variant=name, group=group, fields=json.dumps(fields))
    try:
      row.update(bench(backbone, args.batch, args.size, args.dtype, frozen_bn,
                       fields.get("attention", "auto"), args.steps, args.warmup, args.repeats,
                       **{k: v for k, v in fields.items() if k != "attention"}))
    except Exception as error:  # report and go on: one variant must not cost the others
      traceback.print_exc()
      row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
    print(json.dumps(row), flush=True)
    rows.append(row)
  print(table(rows))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
