"""Load and run an exported embedder with JAX alone (no pfml_jax model code, no flax).

    from exported_embedder import load_exported   # a copy of this file sits in every export
    embedder = load_exported("export_dir")
    embeddings = embedder(images)  # uint8 (B, S, S, 3) RGB -> float32 (B, E), unit rows

The images must be prepared as ``model.json`` ``"input"`` says: the shorter side resized to
``resize_size`` (antialiased, ``interpolation``), then the centre ``S x S`` crop, RGB uint8
(torchvision's ``Resize(resize_size)`` + ``CenterCrop(S)``). This file imports only the
standard library, NumPy and JAX, so it can be copied next to the export and used alone.
"""

import dataclasses
import json
import math
import struct
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

MODEL_FILE = "model.jax_export"
WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "model.json"
KEY_SEPARATOR = "/"  # weights are stored flat: "params/backbone/.../kernel"

_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
                       "BF16": jnp.bfloat16, "I64": np.int64, "I32": np.int32, "I16": np.int16,
                       "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
  """Every tensor of a .safetensors file (8-byte header size, JSON header, raw bytes)."""
  data = Path(path).read_bytes()
  (header_size,) = struct.unpack("<Q", data[:8])
  header = json.loads(data[8:8 + header_size])
  header.pop("__metadata__", None)
  tensors = {}
  for name, info in header.items():
    begin, _ = info["data_offsets"]
    tensors[name] = np.frombuffer(data, dtype=_SAFETENSORS_DTYPES[info["dtype"]],
                                  count=math.prod(info["shape"]),
                                  offset=8 + header_size + begin).reshape(info["shape"])
  return tensors


def unflatten(flat: dict[str, np.ndarray]) -> dict:
  """{"a/b/c": x} -> {"a": {"b": {"c": x}}}."""
  tree: dict = {}
  for key, value in flat.items():
    *parents, leaf = key.split(KEY_SEPARATOR)
    node = tree
    for name in parents:
      node = node.setdefault(name, {})
    node[leaf] = value
  return tree


@dataclasses.dataclass(frozen=True)
class ExportedEmbedder:
  """The deserialized function with its weights on the default device."""

  exported: jax.export.Exported
  variables: dict
  metadata: dict  # model.json: input spec, transform, embedding dim, run, step, config

  @property
  def image_size(self) -> int:
    return int(self.metadata["input"]["shape"][1])

  def __call__(self, images) -> jax.Array:
    """uint8 (B, S, S, 3) RGB images (prepared as ``metadata["input"]``) -> (B, E) float32."""
    return self.exported.call(self.variables, jnp.asarray(images, jnp.uint8))


def load_exported(path: str | Path) -> ExportedEmbedder:
  """The embedder exported to the folder ``path`` (by ``python -m pfml_jax.inference export``)."""
  path = Path(path)
  missing = [name for name in (MODEL_FILE, WEIGHTS_FILE, METADATA_FILE)
             if not (path / name).is_file()]
  if missing:
    raise FileNotFoundError(f"{path} lacks {missing}: an export folder holds {MODEL_FILE}, "
                            f"{WEIGHTS_FILE} and {METADATA_FILE}.")
  exported = jax.export.deserialize(bytearray((path / MODEL_FILE).read_bytes()))
  variables = jax.tree.map(jnp.asarray, unflatten(read_safetensors(path / WEIGHTS_FILE)))
  metadata = json.loads((path / METADATA_FILE).read_text())
  return ExportedEmbedder(exported, variables, metadata)
