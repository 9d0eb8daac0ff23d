"""Ahead-of-time compilation for TPU topologies (``python -m pfml_jax.aot``), on this CPU.

The TPU compiler comes from libtpu (requirements-dev.txt). Where it cannot load the tests skip
with the reason, except under CI=true, where they fail: CI must compile for TPU.
"""

import dataclasses
import os
import subprocess
import sys

import jax
import pytest

from pfml_jax import experiments
from pfml_jax.aot import abstract_run, compiled_steps, topologies, topology_report
from pfml_jax.aot import report as report_lib
from pfml_jax.parallel import mesh as mesh_lib
from pfml_jax.settings import validation
from pfml_jax.training import setup as setup_lib
from pfml_jax.user_errors import ConfigError, UserInputError
from tests.tiny_run import tiny_config

# The image folder fixture: 6 training classes of 6 images (2 held out for validation), 40 x 48
# pixels (the cache's side R is the largest side, 48).
FOLDER_SHAPE = {"train_images": 36, "train_classes": 6}


def tpu_compiler_or_skip() -> None:
  try:
    topology_report.topology_devices(topologies.topology("v5e-4"))
  except UserInputError as error:
    if os.environ.get("CI") == "true":
      pytest.fail(f"CI must compile for TPU, but: {error}")
    pytest.skip(str(error))


# Published per-chip figures (Cloud TPU docs): peak bf16 FLOP/s, HBM bytes/s, chip name.
CHIP_FIGURES = {"v5e-4": (197e12, 819e9, "TPU v5e"), "v4-8": (275e12, 1200e9, "TPU v4"),
                "v5p-8": (459e12, 2765e9, "TPU v5p")}


@pytest.fixture(scope="module", params=list(CHIP_FIGURES))
def tiny_report(request, image_folder):  # noqa: F811 (fixture)
  """The tiny config (batch 8) compiled for the 4 chips of a v5e 2 x 2, a v4-8 and a v5p-8."""
  tpu_compiler_or_skip()
  config = tiny_config(image_folder, **{"mesh.data": -1, "data.cache_size": 48})
  shape = abstract_run.dataset_shape(config, **FOLDER_SHAPE)
  topology = topologies.topology(request.param)
  return request.param, topology_report.compile_report(config, "tiny", topology, shape)


@pytest.mark.parametrize("name,chips,hosts,kind", [
    ("v5e-32", 32, 8, "TPU v5 lite"), ("2xv5e-4", 8, 2, "TPU v5 lite"), ("v4-32", 16, 4, "TPU v4"),
    ("v5p-128", 64, 16, "TPU v5"), ("v6e-8", 8, 1, "TPU v6 lite")])
def test_topologies_give_their_chips_and_hosts(name, chips, hosts, kind):
  """One process holds every host's devices (v4 and v5p: one megacore device per chip)."""
  tpu_compiler_or_skip()
  topology = topologies.topology(name)
  devices = topology_report.topology_devices(topology)
  assert len(devices) == chips and {d.device_kind for d in devices} == {kind}
  assert len({d.process_index for d in devices}) == hosts == chips // topology.chips_per_host


def test_topology_table_resolves_slices_and_multi_slice_names():
  v5e_32 = topologies.topology("v5e-32")
  assert (v5e_32.topology_name, v5e_32.chips_per_host, v5e_32.num_slices) == ("v5e:4x8", 4, 1)
  two = topologies.topology("2xv5e-256")
  assert (two.topology_name, two.num_slices) == ("v5e:16x16", 2)
  assert topologies.topology("v5p-128").topology_name == "v5:4x4x4"
  with pytest.raises(UserInputError, match="--topology=v9-8: unknown"):
    topologies.topology("v9-8")


def test_report_of_the_tiny_config_on_four_chips(tiny_report):
  name, (report, problem) = tiny_report
  peak, bandwidth, chip = CHIP_FIGURES[name]
  assert problem is None
  assert (report["chips"], report["hosts"], report["batch_size"]) == (4, 1, 8)
  assert report["batch_note"] is None  # 8 splits over 4 chips: compiled as given
  assert report["chip"]["name"] == chip and report["status"] == "compiled, not run"
  assert (report["attention"], report["energy_path"]) == ("xla", "dense")
  assert (report["train_images"], report["train_classes"]) == (24, 4)
  for name, images in (("train_step", 2), ("embed_step", 4)):  # eval batch 16 over 4 chips
    step = report[name]
    memory = step["memory_per_chip"]
    assert memory["arguments"] > 0 and memory["outputs"] > 0 and memory["fits"]
    assert memory["total"] == (memory["arguments"] + memory["temporaries"] + memory["outputs"]
                               - memory["aliased"] + memory["code"])
    assert step["flops_per_chip"] > 0 and step["bytes_accessed_per_chip"] > 0
    roofline = max(step["flops_per_chip"] / peak, step["bytes_accessed_per_chip"] / bandwidth)
    assert step["roofline_step_seconds"] == pytest.approx(roofline)
    assert step["roofline_images_per_second_per_chip"] == pytest.approx(images / roofline)
  # The donated state comes back in place: its outputs alias its arguments.
  assert report["train_step"]["memory_per_chip"]["aliased"] > 0


def test_a_config_too_large_for_the_chip_is_refused(tmp_path):
  """60,000 images of 512 px (55,200 train once 8 of 100 classes are held out)
  cached on every chip (43 GB): exit 2, one error line naming the chip, the need, the
  capacity and the largest buffers."""
  tpu_compiler_or_skip()
  env = dict(os.environ, PYTHONPATH=os.getcwd())
  result = subprocess.run(
      [sys.executable, "-m", "pfml_jax.aot", "--config=configs/demo.py", "--topology=v5e-4",
       "--train_images=60000", "--train_classes=100", "--config.data.cache_size=512",
       "--config.data.val_classes=8",
       f"--json={tmp_path / 'report.json'}"],
      capture_output=True, text=True, env=env, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, result.stderr[-2000:]
  assert "TPU v5e" in errors[0] and "16.00 GiB" in errors[0], errors[0]
  cache = 55_200 * 512 * 512 * 3 / 2**30  # the 92 training classes' images, 8 held out
  assert f"Largest arguments per chip: ['device_data']['cache'] {cache:.2f} GiB" in errors[0], (
      errors[0])


@pytest.mark.parametrize("input_mode,shard_cache", [("cached", False), ("cached", True),
                                                   ("grain", False)])
def test_the_aot_tool_compiles_the_trainers_step(image_folder, input_mode,  # noqa: F811
                                                 shard_cache):
  """The tool's train and embedding steps, built from shapes only, are the trainer's own:
  the same StableHLO as the trainer's step lowered on the real data's arrays (the image
  cache copied on each of the 8 devices, or split over them; or decoded crops)."""
  config = tiny_config(image_folder, **{"mesh.data": -1, "data.cache_size": 48,
                                        "data.shard_cache": shard_cache,
                                        "data.input_mode": input_mode})
  setup = setup_lib.build(config)
  train_input = setup_lib.open_train_input(setup, start_step=0)
  step, device_data = setup_lib.compile_train_step(setup, train_input)
  rows = mesh_lib.batch_sharding(setup.mesh)
  batch = {k: mesh_lib.global_array(v, rows) for k, v in next(iter(train_input)).items()}
  trainers = step.lower(setup.abstract_sharded_state(), device_data, batch,
                        jax.random.key(1)).as_text()

  shape = abstract_run.dataset_shape(config, **FOLDER_SHAPE)
  aot_setup, aot_input = abstract_run.abstract_setup(config, jax.devices(), shape)
  assert compiled_steps.lower_train_step(aot_setup, aot_input).as_text() == trainers
  size = setup.embedder.image_size
  images = jax.numpy.zeros((16, size, size, 3), jax.numpy.uint8)  # eval.batch_size 16
  trainers_embed = setup.evaluator.embed_fn.lower(setup.abstract_state.variables(),
                                                  images).as_text()
  assert compiled_steps.lower_embed_step(aot_setup).as_text() == trainers_embed


def test_a_batch_that_does_not_split_over_the_chips_is_refused_with_a_fix():
  """SOP ViT's 900 images do not split over a v5e-8's 8 chips: the trainer's own check refuses
  the config and names the nearest number of classes per batch that does split."""
  config = experiments.experiment("sop", "vit_s16", "pfml")
  with pytest.raises(ConfigError, match=r"batch_size=900 must divide evenly over 8 devices.*"
                     r"data.classes_per_batch=448 \(batch 896\)"):
    validation.validate(config, device_count=8)
  for classes, per_class, devices in ((25, 4, 8), (98, 9, 8), (50, 2, 32), (7, 3, 5)):
    chosen = validation.divisible_classes_per_batch(classes, per_class, devices)
    assert chosen * per_class % devices == 0
    closer = [c for c in range(2, 3 * classes) if abs(c - classes) < abs(chosen - classes)]
    assert all(c * per_class % devices for c in closer)


def test_the_report_compiles_the_nearest_batch_that_splits_and_says_so():
  """The tool answers for the batch the run will need: SOP ViT's 900 images become 896 on a
  v5e-8 (the classes per batch the trainer's own message names), with the override to pass;
  the caller's config is left as it was."""
  config = experiments.experiment("sop", "vit_s16", "pfml")
  adjusted, note = topology_report.splitting_batch(config, 8)
  assert adjusted.data.classes_per_batch == 448 and config.data.classes_per_batch == 450
  assert "batch 900 does not split over 8 chips" in note
  assert "--config.data.classes_per_batch=448 (batch 896)" in note
  validation.validate(adjusted, device_count=8)
  same, none = topology_report.splitting_batch(config, 4)  # 900 splits over 4
  assert same is config and none is None
  pinned = experiments.experiment("sop", "vit_s16", "pfml")
  pinned.mesh.data = 6  # the data axis, not the chip count, must split the batch
  assert topology_report.splitting_batch(pinned, 8)[1] is None
  report = {"config": "c", "topology": "v5e-8", "chips": 8, "hosts": 1, "libtpu": "x",
            "batch_size": 896, "attention": "xla", "energy_path": "block_sparse",
            "batch_note": note, "train_step": {"compiler_error": "e"},
            "embed_step": {"compiler_error": "e"},
            "chip": {"name": "TPU v5e", "source": "s"}}
  assert f"  note: {note}" in report_lib.format_report(report).splitlines()


def test_memory_beyond_hbm_is_named_with_its_largest_buffers():
  """A program the compiler accepts but whose buffers exceed HBM (arguments + temporaries +
  outputs - what the donation aliases) is refused with the need, the capacity and the
  largest buffers."""
  chip = topologies.CHIPS["v5e"]
  gib = 2**30
  cost = report_lib.StepCost(argument_bytes=10 * gib, temp_bytes=5 * gib, output_bytes=2 * gib,
                             alias_bytes=2 * gib, code_bytes=0, flops=1e12, bytes_accessed=1e9)
  largest = [compiled_steps.LeafSize("['device_data']['cache']", 9 * gib)]
  message = report_lib.does_not_fit(chip, "the train step", cost, largest)
  assert message is None  # 15 GiB fits 16 GiB
  bigger = dataclasses.replace(cost, temp_bytes=7 * gib)
  assert report_lib.does_not_fit(chip, "the train step", bigger, largest) == (
      "the train step does not fit a TPU v5e chip: it needs 17.00 GiB per chip, the chip has "
      "16.00 GiB of HBM; largest buffers: ['device_data']['cache'] 9.00 GiB, temporaries "
      "7.00 GiB.")
  assert bigger.roofline_seconds(chip) == max(1e12 / 197e12, 1e9 / 819e9)
