"""`export`: a jax.export artifact + safetensors weights that run with JAX alone and give the
in-process model's embeddings."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file

from pfml_jax import default_config
from pfml_jax.data.eval_input import resize_center_crop
from pfml_jax.evaluation.embedder import build_embedder
from pfml_jax.evaluation.trained_model import load_trained_model
from pfml_jax.inference import export as export_lib
from pfml_jax.inference import exported_embedder
from pfml_jax.inference.embedding_set import weights_sha256
from tests.inference.conftest import error_lines

# Runs in a fresh interpreter with the export folder as its only import path for our code.
STANDALONE = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from exported_embedder import load_exported
    embedder = load_exported(sys.argv[1])
    images = np.load(sys.argv[2])
    np.save(sys.argv[3], np.concatenate([np.asarray(embedder(images[:3])),
                                         np.asarray(embedder(images[3:]))]))
    print(json.dumps(sorted(m for m in sys.modules
                            if m.split(".")[0] in ("pfml_jax", "flax", "tests"))))
""")


def model_inputs(image_folder, transform, count=8):
  paths = sorted(image_folder.glob("*/*.jpg"))[::9][:count]
  return np.stack([resize_center_crop(Image.open(p).convert("RGB"), transform.resize_size,
                                      transform.image_size, transform.interpolation)
                   for p in paths])


def test_export_round_trip_without_pfml_jax(image_folder, run_dir, tmp_path, cli):
  out = tmp_path / "export"
  code, stdout, err = cli("export", f"--workdir={run_dir}", f"--out={out}",
                          "--platforms=cpu,cuda,tpu")
  assert code == 0, err
  assert stdout.split() == [str(out)]
  trained = load_trained_model(run_dir, "best")
  metadata = json.loads((out / "model.json").read_text())
  assert metadata["input"]["shape"] == ["b", 64, 64, 3] and metadata["input"]["dtype"] == "uint8"
  assert metadata["input"]["transform"] == {"image_size": 64, "resize_size": 72,
                                            "interpolation": "bicubic"}
  assert metadata["output"]["shape"] == ["b", 16] and metadata["platforms"] == ["cpu", "cuda",
                                                                               "tpu"]
  assert metadata["model"]["step"] == trained.step
  assert metadata["config"]["model"]["backbone"] == "vit_tiny"
  exported = jax.export.deserialize(bytearray((out / "model.jax_export").read_bytes()))
  assert exported.platforms == ("cpu", "cuda", "tpu")
  assert str(exported.in_avals[-1].shape[0]) == "b"

  # Our safetensors reader reads what the safetensors library wrote, and those are the weights.
  ours = exported_embedder.read_safetensors(out / "weights.safetensors")
  theirs = load_file(str(out / "weights.safetensors"))
  assert sorted(ours) == sorted(theirs) and all(np.array_equal(ours[k], theirs[k]) for k in ours)
  assert weights_sha256(exported_embedder.unflatten(ours)) == weights_sha256(trained.variables)

  images = model_inputs(image_folder, trained.embedder.transform)
  np.save(tmp_path / "images.npy", images)
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
  process = subprocess.run(
      [sys.executable, "-c", STANDALONE, str(out), str(tmp_path / "images.npy"),
       str(tmp_path / "embeddings.npy")], cwd=tmp_path, env=env, capture_output=True,
      text=True, timeout=300, check=False)
  assert process.returncode == 0, process.stderr
  assert json.loads(process.stdout.splitlines()[-1]) == []  # no pfml_jax, no flax
  want = np.asarray(jax.jit(trained.embedder.apply)(trained.variables, images))
  np.testing.assert_allclose(np.load(tmp_path / "embeddings.npy"), want, rtol=0, atol=1e-5)


def test_a_batchnorm_backbone_exports_with_its_statistics(tmp_path):
  """resnet50_tiny (BatchNorm statistics among the variables), random values of its shapes."""
  config = default_config.get_config()
  config.model.backbone, config.model.embedding_dim = "resnet50_tiny", 8
  config.model.dtype, config.model.pretrained = "float32", ""
  embedder = build_embedder(config.model)
  rng = np.random.default_rng(1)
  variables = jax.tree.map(  # |x| + 0.5: valid variances and scales (no init compile needed)
      lambda shape: (np.abs(rng.normal(0, 0.3, shape.shape)) + 0.5).astype(np.float32),
      jax.eval_shape(embedder.init_variables, jax.random.key(1)))
  assert "batch_stats" in variables
  exported = export_lib.export_embedder(embedder, variables)
  flat = export_lib.flatten_variables(variables)
  assert any(k.startswith("batch_stats/") for k in flat)
  loaded = jax.export.deserialize(exported.serialize())
  images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
  got = loaded.call(exported_embedder.unflatten(flat), images)
  want = jax.jit(embedder.apply)(variables, images)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_vits_export_with_xla_attention_unless_for_cuda_alone(run_dir):
  trained = load_trained_model(run_dir, "latest")
  assert trained.embedder.model.backbone.attention == "auto"
  portable = export_lib.portable_embedder(trained.embedder, ("cpu", "cuda"))
  assert portable.model.backbone.attention == "xla"
  assert export_lib.portable_embedder(trained.embedder, ("cuda",)) is trained.embedder
  images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
  np.testing.assert_allclose(jax.jit(portable.apply)(trained.variables, images),
                             jax.jit(trained.embedder.apply)(trained.variables, images),
                             rtol=0, atol=1e-6)


def test_unknown_platform_is_one_error_line(run_dir, tmp_path, cli):
  code, _, err = cli("export", f"--workdir={run_dir}", f"--out={tmp_path / 'e'}",
                     "--platforms=cpu,gpu")
  assert code == 2
  assert error_lines(err) == [
      "error: --platforms: unknown ['gpu']; choose from cpu, cuda, rocm, tpu (comma-separated)."]
  assert not (tmp_path / "e").exists()


def test_load_exported_names_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="lacks"):
    exported_embedder.load_exported(tmp_path)
