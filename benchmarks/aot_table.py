"""The ahead-of-time compilation table of docs/benchmarks.md: every paper config on v5e-8, the
SOP configs also on v5e-32 with and without proxy sharding.

    python benchmarks/aot_table.py commands --out=/tmp/aot   # one pfml_jax.aot command a line
    python benchmarks/aot_table.py table --out=/tmp/aot      # the Markdown table of the JSONs

The paper's batches (100, 882, 900) do not split over 8 or 32 chips, which the trainer
refuses; the tool then compiles the number of classes per batch nearest the paper's that makes
the batch a multiple of the chip count (images per class unchanged), and its report says so.
"""

import json
import os
import re

from absl import flags

from pfml_jax.command_line import fail, parse_tool_flags

DATASETS = ("cub", "cars", "sop")
BACKBONES = ("resnet50", "bninception", "vit", "dino")


def runs() -> list[tuple[str, str, bool, bool]]:
  """(config file, topology, shard proxies, shard the image cache) of every row: SOP's 47 GB
  cache fits no v5e chip whole, so SOP also runs with it split over the chips."""
  rows = [(f"configs/{d}_{b}.py", "v5e-8", False, False) for d in DATASETS for b in BACKBONES]
  rows += [(f"configs/sop_{b}.py", "v5e-8", False, True) for b in BACKBONES]
  rows += [(f"configs/sop_{b}.py", "v5e-32", proxies, True) for b in BACKBONES
           for proxies in (False, True)]
  return rows


def run_name(config: str, topology: str, shard_proxies: bool, shard_cache: bool) -> str:
  stem = os.path.basename(config).removesuffix(".py")
  return (f"{stem}-{topology}{'-proxies_sharded' if shard_proxies else ''}"
          f"{'-cache_sharded' if shard_cache else ''}")


def command(config: str, topology: str, shard_proxies: bool, shard_cache: bool,
            out: str) -> str:
  name = run_name(config, topology, shard_proxies, shard_cache)
  return (f"python -m pfml_jax.aot --config={config} --topology={topology} "
          f"--config.mesh.shard_proxies={shard_proxies} --config.data.shard_cache={shard_cache} "
          f"--json={out}/{name}.json")


def table(out: str) -> str:
  lines = ["| config | topology | proxies / image cache | batch (per chip) | train step total per chip "
           "(arguments + temporaries + outputs - aliased; + code) | fits 16 GiB | train TFLOP per chip | GB accessed "
           "per chip | FLOPs alone ms/step | roofline ms/step | img/s per chip (roofline) | "
           "embed step memory per chip | attention / energy path |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for config, topology, shard_proxies, shard_cache in runs():
    path = os.path.join(out, run_name(config, topology, shard_proxies, shard_cache) + ".json")
    proxies = " / ".join("split" if split else "copied"
                         for split in (shard_proxies, shard_cache))
    if not os.path.exists(path):
      lines.append(f"| {config} | {topology} | {proxies} | not compiled yet |" + " |" * 9)
      continue
    with open(path, encoding="utf-8") as file:
      report = json.load(file)
    train, embed = report["train_step"], report["embed_step"]
    if "compiler_error" in train:
      need = re.search(r"required for [\w ]+\(([\d.]+G)\)", train["compiler_error"])
      lines.append(f"| {config} | {topology} | {proxies} | {report['batch_size']} "
                   f"({report['batch_size'] // report['chips']}) | refused by the TPU compiler"
                   f"{': temporaries ' + need.group(1) if need else ''} | NO |" + " |" * 6
                   + f" {report['attention']} / {report['energy_path']} |")
      continue
    memory = train["memory_per_chip"]
    lines.append(
        f"| {config} | {topology} | {proxies} | {report['batch_size']} "
        f"({train['images_per_chip']}) | {memory['total'] / 2**30:.2f} GiB "
        f"({memory['arguments'] / 2**30:.2f} + {memory['temporaries'] / 2**30:.2f} + "
        f"{memory['outputs'] / 2**30:.2f} - {memory['aliased'] / 2**30:.2f}) | "
        f"{'yes' if memory['fits'] and embed['memory_per_chip']['fits'] else 'NO'} | "
        f"{train['flops_per_chip'] / 1e12:.2f} | {train['bytes_accessed_per_chip'] / 1e9:.1f} | "
        f"{train['flops_per_chip'] / report['chip']['peak_bf16_flops'] * 1e3:.1f} | "
        f"{train['roofline_step_seconds'] * 1e3:.0f} | "
        f"{train['roofline_images_per_second_per_chip']:.0f} | "
        f"{embed['memory_per_chip']['total'] / 2**30:.2f} GiB | "
        f"{report['attention']} / {report['energy_path']} |")
  return "\n".join(lines)


_FLAGS = flags.FlagValues()
flags.DEFINE_string("out", None, "folder of the --json reports", flag_values=_FLAGS)
flags.mark_flag_as_required("out", flag_values=_FLAGS)


def main():
  what = parse_tool_flags(_FLAGS, None, __doc__)
  if what not in (["commands"], ["table"]):
    fail("give one argument: commands (print the compile commands) or table (the Markdown "
         "table of their reports).")
  if what == ["commands"]:
    print("\n".join(command(*row, _FLAGS.out) for row in runs()))
  else:
    print(table(_FLAGS.out))


if __name__ == "__main__":
  main()
