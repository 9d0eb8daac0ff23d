"""The train step and the evaluator lower for TPU and for CUDA from this CPU machine.

``jax.export`` lowers the real jitted functions for a platform without its hardware; the
platform-dependent choices (attention, PFML's energy path) are made for the platform named,
and a program for one platform must carry no other platform's custom calls.
"""

import re

import jax
import pytest

from pfml_jax.training import setup as setup_lib
from tests.tiny_run import tiny_config

GPU_ONLY = ("__gpu$", "__cudnn$", "cu_", "triton")  # Triton kernels, cuDNN, CUDA-only ops
TPU_ONLY = ("tpu_custom_call", "mosaic")  # Mosaic TPU kernels
OTHERS = {"tpu": GPU_ONLY, "cuda": TPU_ONLY}
TRITON = "__gpu$xla.gpu.triton"


def custom_calls(exported) -> set[str]:
  return set(re.findall(r"custom_call @([\w$.\-]+)", exported.mlir_module()))


def export_train_step(config, platform, disabled_checks=()):
  """The set-up's jitted, donated train step, exported for ``platform``."""
  setup = setup_lib.build(config, platform=platform)
  train_input = setup_lib.open_train_input(setup, start_step=0)
  step, device_data = setup_lib.compile_train_step(setup, train_input)
  rows = jax.NamedSharding(setup.mesh, jax.P("data"))
  batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=rows)
           for k, v in next(iter(train_input)).items()}
  data = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                      device_data)
  rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype)
  return jax.export.export(step, platforms=(platform,), disabled_checks=disabled_checks)(
      setup.abstract_sharded_state(), data, batch, rng), setup


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
@pytest.mark.parametrize("loss,backbone", [
    ("pfml", "resnet50_tiny"), ("pfml", "bninception_tiny"), ("pfml", "vit_tiny"),
    ("proxy_anchor", "resnet50_tiny")])
def test_train_step_and_evaluator_export(image_folder, platform, loss, backbone):
  config = tiny_config(image_folder, **{"loss.name": loss, "model.backbone": backbone,
                                        "model.dtype": "bfloat16"})
  exported, setup = export_train_step(config, platform)
  assert exported.platforms == (platform,)
  leaked = [c for c in custom_calls(exported) if c.startswith(OTHERS[platform])]
  assert not leaked, leaked
  # The evaluator's jitted embedding, with a symbolic batch.
  batch = jax.export.symbolic_shape("b")[0] * setup.mesh.size
  images = jax.ShapeDtypeStruct((batch, setup.embedder.image_size, setup.embedder.image_size,
                                 3), jax.numpy.uint8)
  variables = setup.abstract_state.variables()
  embed = jax.export.export(setup.evaluator.embed_fn, platforms=(platform,))(variables, images)
  assert not [c for c in custom_calls(embed) if c.startswith(OTHERS[platform])]


def test_pfml_kernels_lower_for_cuda_and_never_reach_tpu(image_folder):
  """method="pallas" puts PFML's Triton kernels in the CUDA program; for TPU the same request
  is refused with a clear error instead of lowering GPU code."""
  config = tiny_config(image_folder, **{"loss.pfml.method": "pallas"})
  exported, _ = export_train_step(
      config, "cuda", disabled_checks=[jax.export.DisabledSafetyCheck.custom_call(TRITON)])
  assert TRITON in custom_calls(exported)
  with pytest.raises(ValueError, match="needs a CUDA GPU"):
    export_train_step(config, "tpu")
