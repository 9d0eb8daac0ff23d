"""A trained embedding model as a portable artifact: StableHLO via ``jax.export`` + weights.

The export folder holds
- ``model.jax_export``: ``jax.export``'s serialization of ``embedder.apply(variables, images)``
  (backbone, head, L2 normalisation) for uint8 (b, S, S, 3) images, the batch ``b`` symbolic,
  lowered for each of ``platforms``;
- ``weights.safetensors``: the variables, flattened with "/"-joined flax paths. They are an
  argument of the exported function, not constants inside it (our choice: the artifact stays
  small, the weights stay readable by any safetensors reader, and fine-tuned weights of the
  same shapes run without exporting again);
- ``model.json``: input spec and evaluation transform, output, embedding dim, run, checkpoint
  step, weights hash, platforms, JAX version and the run's config;
- ``exported_embedder.py``: a copy of the loader, which needs only NumPy and JAX.
"""

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pfml_jax.evaluation.embedder import Embedder
from pfml_jax.evaluation.trained_model import TrainedModel
from pfml_jax.inference import exported_embedder
from pfml_jax.inference.embedding_set import model_fingerprint
from pfml_jax.user_errors import UserInputError

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # the platform names jax.export lowers for
DEFAULT_PLATFORMS = ("cpu",)  # our choice: runs anywhere; --platforms adds accelerators


def flatten_variables(variables: dict) -> dict[str, np.ndarray]:
  """{"params/backbone/.../kernel": array}: the variables with "/"-joined flax paths."""
  flat = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(variables):
    names = [str(key.key) for key in path]
    if any(exported_embedder.KEY_SEPARATOR in name for name in names):
      raise ValueError(f"variable path {names} holds {exported_embedder.KEY_SEPARATOR!r}.")
    flat[exported_embedder.KEY_SEPARATOR.join(names)] = np.ascontiguousarray(np.asarray(leaf))
  return flat


def check_platforms(platforms: Sequence[str]) -> tuple[str, ...]:
  platforms = tuple(dict.fromkeys(p.strip() for p in platforms if p.strip()))
  unknown = sorted(set(platforms) - set(PLATFORMS))
  if unknown or not platforms:
    raise UserInputError(f"--platforms: unknown {unknown or 'empty list'}; choose from "
                         f"{', '.join(PLATFORMS)} (comma-separated).")
  return platforms


def portable_embedder(embedder: Embedder, platforms: Sequence[str]) -> Embedder:
  """The embedder with XLA's attention unless the export is for CUDA alone.

  A ViT's ``attention="auto"`` takes cuDNN's fused attention when traced on a GPU in
  bfloat16: a CUDA-only custom call that cannot lower for CPU or TPU. XLA's is the same maths
  and the same parameters.
  """
  backbone = embedder.model.backbone
  if tuple(platforms) == ("cuda",) or getattr(backbone, "attention", "xla") == "xla":
    return embedder
  return dataclasses.replace(embedder,
                             model=embedder.model.clone(backbone=backbone.clone(attention="xla")))


def export_embedder(embedder: Embedder, variables: dict,
                    platforms: Sequence[str] = DEFAULT_PLATFORMS) -> jax.export.Exported:
  """``embedder.apply`` exported for (variables, uint8 (b, S, S, 3)), ``b`` symbolic."""
  platforms = check_platforms(platforms)
  embedder = portable_embedder(embedder, platforms)
  (batch,) = jax.export.symbolic_shape("b")
  size = embedder.image_size
  images = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.uint8)
  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype),
                        variables)
  return jax.export.export(jax.jit(embedder.apply), platforms=platforms)(shapes, images)


def metadata(trained: TrainedModel, platforms: Sequence[str]) -> dict:
  """model.json: how to prepare the input, what comes out, and where the model came from."""
  transform = trained.embedder.transform
  size = transform.image_size
  return {
      "input": {"dtype": "uint8", "shape": ["b", size, size, 3], "layout": "NHWC RGB, 0..255",
                "transform": dataclasses.asdict(transform),
                "prepare": (f"resize the shorter side to {transform.resize_size} px "
                            f"({transform.interpolation}, antialiased), then crop the centre "
                            f"{size} x {size} (torchvision Resize({transform.resize_size}) + "
                            f"CenterCrop({size})); no mean/std: the model normalises inside")},
      "output": {"dtype": "float32", "shape": ["b", trained.embedder.embedding_dim],
                 "note": "L2-normalised rows: compare by dot product (cosine similarity)"},
      "call": "exported.call(variables, images); variables = weights.safetensors unflattened "
              "at '/' (exported_embedder.load_exported does both)",
      "platforms": list(platforms), "jax_version": jax.__version__,
      "model": model_fingerprint(trained),
      "config": json.loads(json.dumps(trained.config.to_dict(), default=str)),
  }


def export(trained: TrainedModel, out_dir: str | Path,
           platforms: Sequence[str] = DEFAULT_PLATFORMS) -> Path:
  """Writes the export folder (module docstring) for ``trained``; returns it."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  platforms = check_platforms(platforms)
  exported = export_embedder(trained.embedder, trained.variables, platforms)
  out_dir = Path(out_dir)
  try:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / exported_embedder.MODEL_FILE).write_bytes(exported.serialize())
    save_file(flatten_variables(trained.variables),
              str(out_dir / exported_embedder.WEIGHTS_FILE),
              metadata={"format": "flax", "step": str(trained.step)})
    (out_dir / exported_embedder.METADATA_FILE).write_text(
        json.dumps(metadata(trained, platforms), indent=1) + "\n")
    shutil.copyfile(exported_embedder.__file__, out_dir / "exported_embedder.py")
  except OSError as error:
    raise UserInputError(f"--out={out_dir}: cannot write the export there ({error}); choose "
                         "a writable folder.") from error
  return out_dir
