"""What a compiled step says about a topology: memory per chip against HBM, FLOPs and bytes
per step, and a roofline estimate of the step time from the chip's published figures.

The roofline time is max(FLOPs / peak bf16 FLOP/s, bytes accessed / HBM bandwidth) per chip:
a lower bound that ignores communication and the float32 work the peak does not describe.
"""

import dataclasses

from pfml_jax.aot.compiled_steps import LeafSize
from pfml_jax.aot.topologies import GIB, Chip


@dataclasses.dataclass(frozen=True)
class StepCost:
  """One compiled step's figures per chip (``memory_analysis`` and ``cost_analysis``)."""

  argument_bytes: int
  temp_bytes: int
  output_bytes: int
  alias_bytes: int  # outputs written into donated arguments, counted once
  code_bytes: int
  flops: float
  bytes_accessed: float

  @property
  def total_bytes(self) -> int:
    return (self.argument_bytes + self.temp_bytes + self.output_bytes - self.alias_bytes
            + self.code_bytes)

  def roofline_seconds(self, chip: Chip) -> float:
    return max(self.flops / chip.peak_bf16_flops,
               self.bytes_accessed / chip.hbm_bytes_per_second)


def step_cost(compiled) -> StepCost:
  """The per-chip figures of a ``jax.stages.Compiled``."""
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return StepCost(memory.argument_size_in_bytes, memory.temp_size_in_bytes,
                  memory.output_size_in_bytes, memory.alias_size_in_bytes,
                  memory.generated_code_size_in_bytes, float(cost.get("flops", 0.0)),
                  float(cost.get("bytes accessed", 0.0)))


def step_report(cost: StepCost, chip: Chip, images_per_chip: int) -> dict:
  """A step's JSON-ready figures: memory per chip, FLOPs, bytes, roofline time, img/s/chip."""
  seconds = cost.roofline_seconds(chip)
  return {
      "memory_per_chip": {"arguments": cost.argument_bytes, "temporaries": cost.temp_bytes,
                          "outputs": cost.output_bytes, "aliased": cost.alias_bytes,
                          "code": cost.code_bytes, "total": cost.total_bytes,
                          "hbm": chip.hbm_bytes, "fits": cost.total_bytes <= chip.hbm_bytes},
      "flops_per_chip": cost.flops, "bytes_accessed_per_chip": cost.bytes_accessed,
      "images_per_chip": images_per_chip, "roofline_step_seconds": seconds,
      "roofline_images_per_second_per_chip": images_per_chip / seconds if seconds else None,
  }


def does_not_fit(chip: Chip, name: str, cost: StepCost, largest: list[LeafSize]) -> str | None:
  """The error message when ``name``'s step needs more than the chip's HBM, else None."""
  if cost.total_bytes <= chip.hbm_bytes:
    return None
  return (f"{name} does not fit a {chip.name} chip: it needs {gib(cost.total_bytes)} per chip, "
          f"the chip has {gib(chip.hbm_bytes)} of HBM; largest buffers: "
          f"{_buffers(largest)}, temporaries {gib(cost.temp_bytes)}.")


def refused(chip: Chip, name: str, reason: str, largest: list[LeafSize]) -> str:
  """The error message when the TPU compiler refuses ``name``'s step (``reason``: its words,
  which state the need and the HBM it has)."""
  return (f"{name} does not fit a {chip.name} chip ({gib(chip.hbm_bytes)} of HBM): {reason} "
          f"Largest arguments per chip: {_buffers(largest) or 'none'}.")


def _buffers(largest: list[LeafSize]) -> str:
  return ", ".join(f"{leaf.path} {gib(leaf.bytes_per_chip)}" for leaf in largest)


def gib(count: float) -> str:
  return f"{count / GIB:.2f} GiB"


def format_report(report: dict) -> str:
  """The report as the lines the command prints."""
  chip = report["chip"]
  lines = [f"{report['config']} on {report['topology']} ({report['chips']} x {chip['name']}, "
           f"{report['hosts']} host(s); compiled, not run; libtpu {report['libtpu']})",
           f"  batch {report['batch_size']} ({report['batch_size'] // report['chips']} per "
           f"chip); attention: {report['attention']}; energy path: {report['energy_path']}",
           f"  chip figures: {chip['source']}"]
  if report["batch_note"]:
    lines.insert(1, f"  note: {report['batch_note']}")
  for name in ("train_step", "embed_step"):
    step = report[name]
    if "compiler_error" in step:
      lines.append(f"  {name}: DOES NOT FIT: {step['compiler_error']}")
      continue
    memory = step["memory_per_chip"]
    lines += [f"  {name}: per chip arguments {gib(memory['arguments'])}, temporaries "
              f"{gib(memory['temporaries'])}, outputs {gib(memory['outputs'])} (aliased "
              f"{gib(memory['aliased'])}), total {gib(memory['total'])} of {gib(memory['hbm'])} "
              f"HBM: {'fits' if memory['fits'] else 'DOES NOT FIT'}",
              f"    {step['flops_per_chip'] / 1e12:.3f} TFLOP and "
              f"{step['bytes_accessed_per_chip'] / 1e9:.2f} GB accessed per chip per step; "
              f"roofline {step['roofline_step_seconds'] * 1e3:.1f} ms/step, "
              f"{step['roofline_images_per_second_per_chip']:.0f} img/s per chip"]
  return "\n".join(lines)
