"""A config compiled for a TPU topology: its train and embedding steps and their report."""

import importlib.metadata
import os

import jax
import ml_collections

from pfml_jax.aot import abstract_run, compiled_steps, report as report_lib
from pfml_jax.aot.topologies import Chip, Topology
from pfml_jax.losses.potential_energy import auto_method
from pfml_jax.models import vit
from pfml_jax.settings.validation import data_axis_size, divisible_classes_per_batch
from pfml_jax.user_errors import UserInputError


def topology_devices(topology: Topology) -> list[jax.Device]:
  """The topology's compile-only devices, one process standing for all of its hosts."""
  from jax.experimental import topologies  # pylint: disable=import-outside-toplevel
  # libtpu takes a machine-wide lock when it loads; compiling needs no TPU, so several
  # processes (and a trainer on this machine) may load it at once.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  try:
    return list(topologies.get_topology_desc(**topology.arguments()).devices)
  except Exception as error:  # pylint: disable=broad-except
    raise UserInputError(f"--topology={topology.name}: the TPU compiler cannot be loaded "
                         f"({str(error).splitlines()[0]}); install the libtpu that "
                         "requirements-dev.txt pins.") from error


def libtpu_version() -> str:
  try:
    return importlib.metadata.version("libtpu")
  except importlib.metadata.PackageNotFoundError:
    return "not installed"


def automatic_paths(config: ml_collections.ConfigDict, setup) -> tuple[str, str]:
  """(attention, energy path) the automatic choices take on TPU for this set-up."""
  attention = "n/a (CNN)"
  if config.model.backbone.startswith(("vit", "dino")):
    attention = vit.attention_implementation(config.model.dtype, "tpu")
  energy = "n/a (not PFML)"
  if config.loss.name == "pfml":
    energy = config.loss.pfml.method
    if energy == "auto":
      points = setup.length.batch_size + len(setup.proxy_labels)
      energy = auto_method(points, setup.embedder.embedding_dim, False)
  return attention, energy


def splitting_batch(config: ml_collections.ConfigDict,
                    chips: int) -> tuple[ml_collections.ConfigDict, str | None]:
  """``config`` with the classes per batch nearest its own whose batch splits over the mesh's
  data axis, and the note saying so (None when the batch already splits). The paper's batches
  (100, 882, 900) split over no 8-chip slice; the trainer refuses them there, and the report
  answers what the run needs instead of stopping at that."""
  data = config.data
  devices = data_axis_size(config, chips)
  if (data.classes_per_batch * data.images_per_class) % devices == 0:
    return config, None
  classes = divisible_classes_per_batch(data.classes_per_batch, data.images_per_class, devices)
  note = (f"batch {data.classes_per_batch * data.images_per_class} does not split over "
          f"{devices} chips (the trainer refuses it); compiled with "
          f"--config.data.classes_per_batch={classes} (batch {classes * data.images_per_class}), "
          "the nearest that splits: run the trainer with that override.")
  config = config.copy_and_resolve_references()
  config.data.classes_per_batch = classes
  return config, note


def compile_report(config: ml_collections.ConfigDict, config_name: str, topology: Topology,
                   shape: abstract_run.DatasetShape) -> tuple[dict, str | None]:
  """The report of ``config`` compiled for ``topology``, and the does-not-fit message (None
  when both steps fit a chip's HBM)."""
  devices = topology_devices(topology)
  config, batch_note = splitting_batch(config, len(devices))
  setup, train_input = abstract_run.abstract_setup(config, devices, shape)
  chip, chips = topology.chip, setup.mesh.size
  largest = compiled_steps.largest_arguments(
      compiled_steps.abstract_train_arguments(setup, train_input))
  train, train_problem = _step_report(compiled_steps.lower_train_step(setup, train_input),
                                      chip, "the train step", setup.length.batch_size // chips,
                                      largest)
  embed, embed_problem = _step_report(compiled_steps.lower_embed_step(setup), chip,
                                      "the embedding step",
                                      setup.evaluator.global_batch_size // chips, [])
  attention, energy = automatic_paths(config, setup)
  report = {
      "config": config_name, "topology": topology.name, "chips": chips,
      "hosts": len(devices) // topology.chips_per_host,
      "chip": {"name": chip.name, "hbm_bytes": chip.hbm_bytes,
               "peak_bf16_flops": chip.peak_bf16_flops,
               "hbm_bytes_per_second": chip.hbm_bytes_per_second, "source": chip.source},
      "libtpu": libtpu_version(), "jax": jax.__version__, "status": "compiled, not run",
      "train_images": shape.train_images, "train_classes": shape.train_classes,
      "cache_side": shape.cache_side, "input_mode": config.data.input_mode,
      "shard_proxies": bool(config.mesh.shard_proxies),
      "batch_size": setup.length.batch_size, "batch_note": batch_note, "attention": attention, "energy_path": energy,
      "train_step": train, "embed_step": embed,
  }
  return report, train_problem or embed_problem


def _step_report(lowered, chip: Chip, name: str, images_per_chip: int,
                 largest: list[compiled_steps.LeafSize]) -> tuple[dict, str | None]:
  """A step's report and its does-not-fit message; the TPU compiler refuses a program whose
  temporaries exceed HBM, which becomes that message (and the report's "compiler_error")."""
  try:
    compiled = lowered.compile()
  except jax.errors.JaxRuntimeError as error:
    if "RESOURCE_EXHAUSTED" not in str(error):
      raise
    reason = " ".join(str(error).split())[:400]
    message = report_lib.refused(chip, name, reason, largest)
    return {"compiler_error": message}, message
  cost = report_lib.step_cost(compiled)
  return (report_lib.step_report(cost, chip, images_per_chip),
          report_lib.does_not_fit(chip, name, cost, largest))
