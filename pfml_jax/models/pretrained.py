"""Load pretrained PyTorch weights (torchvision, timm, DINO, Cadene) into a backbone.

Files: ``.safetensors`` (read without torch) or ``.pth``/``.pt``/``.bin`` (needs torch).
Training checkpoints are unwrapped (``state_dict``, ``model``, ``teacher`` entries; ``module.``
and ``backbone.`` key prefixes). Each backbone names a ``WeightLayout``: how our parameter paths
map to the checkpoint's keys. Tensors are converted (OIHW -> HWIO convolutions, transposed
linears, Cadene's (1, C) vectors squeezed, ViT position embeddings resized bicubically like
timm when the model's grid differs) and checked: missing, unexpected and shape-mismatched keys
raise one error that lists them (``strict=True``, the default) or are logged and skipped
(``strict=False``). Classifier heads are expected extras, reported and ignored. Only the
backbone is replaced; the head and everything else stay as they were.
"""

import dataclasses
import logging
import math
import re
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from pfml_jax.models.registry import get_backbone_spec
from pfml_jax.user_errors import MissingFileError, WeightsError

logger = logging.getLogger(__name__)

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".tar")
CONTAINERS = ("state_dict", "model", "teacher")  # nested dicts training checkpoints keep
PREFIXES = ("module.", "backbone.")  # DistributedDataParallel, DINO's MultiCropWrapper
LEAF_NAMES = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
              "var": "running_var"}
COUNTERS = r"\.num_batches_tracked$"  # BatchNorm step counters: no counterpart, always ignored
MAX_LISTED = 25


@dataclasses.dataclass(frozen=True)
class WeightLayout:
  """How a checkpoint's keys relate to our parameter paths (joined with '.')."""

  description: str
  renames: tuple[tuple[str, str], ...]  # regex substitutions, applied in order
  extras: str  # regex of checkpoint keys expected to have no counterpart (classifier heads)


LAYOUTS: dict[str, WeightLayout] = {
    "torchvision_resnet": WeightLayout(
        "torchvision/timm ResNet",
        ((r"^layer(\d+)_(\d+)\.", r"layer\1.\2."), (r"\.downsample_conv\.", ".downsample.0."),
         (r"\.downsample_bn\.", ".downsample.1.")),
        r"^fc\."),
    "timm_vit": WeightLayout(
        "timm/DINO VisionTransformer",
        ((r"^blocks_(\d+)\.", r"blocks.\1."), (r"^patch_embed\.", "patch_embed.proj.")),
        r"^head\."),
    "cadene_bninception": WeightLayout(
        "Cadene BNInception", (), r"^last_linear\."),
}


def checkpoint_key(path: tuple[str, ...], layout: WeightLayout) -> str:
  """Our parameter path (inside the backbone) -> the checkpoint key it is stored under."""
  key = ".".join(path[:-1] + (LEAF_NAMES.get(path[-1], path[-1]),))
  for pattern, replacement in layout.renames:
    key = re.sub(pattern, replacement, key)
  return key


def _unwrap(checkpoint: Mapping[str, Any]) -> Mapping[str, Any]:
  while True:
    inner = next((c for c in CONTAINERS if isinstance(checkpoint.get(c), Mapping)), None)
    if inner is None:
      break
    checkpoint = checkpoint[inner]
  out = {}
  for key, value in checkpoint.items():
    for prefix in PREFIXES:
      key = key.removeprefix(prefix)
    out[key] = value
  return out


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
  """The tensors of a checkpoint file as NumPy arrays (floats as float32), by unwrapped key."""
  path = Path(path).expanduser()
  if not path.is_file():
    raise MissingFileError(
        f"Pretrained weights {path} not found. Export them once on a machine with internet and "
        "torch: `python -m pfml_jax.models.export_weights --model=NAME --out=FILE.safetensors` "
        "(see docs/models.md), then point the config at that file.")
  if path.suffix == ".safetensors":
    from safetensors import safe_open  # the flax reader also handles bfloat16
    with safe_open(str(path), framework="flax") as f:
      return _unwrap({key: _float32(np.asarray(f.get_tensor(key))) for key in f.keys()})
  if path.suffix in TORCH_SUFFIXES:
    return _read_torch(path)
  raise WeightsError(f"Cannot read {path}: expected a .safetensors file, or a PyTorch checkpoint "
                     f"({', '.join(TORCH_SUFFIXES)}).")


def _float32(array: np.ndarray) -> np.ndarray:
  is_float = array.dtype.kind == "f" or array.dtype.name == "bfloat16"
  return array.astype(np.float32) if is_float else array


def _read_torch(path: Path) -> dict[str, np.ndarray]:
  try:
    import torch
  except ImportError as e:
    raise ImportError(
        f"Reading the PyTorch checkpoint {path} needs torch (pip install torch). Or convert it "
        "once where torch is installed: `python -m pfml_jax.models.export_weights --model=NAME "
        f"--checkpoint={path} --out=FILE.safetensors`, and load the .safetensors file.") from e
  try:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises several types for foreign pickles
    raise WeightsError(f"torch.load(weights_only=True) could not read {path}: {e}. If you trust "
                       "the file, load it in PyTorch yourself and save its state_dict with "
                       "safetensors.torch.save_file.") from e
  return torch_state_to_numpy(checkpoint)


def torch_state_to_numpy(checkpoint: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """The (unwrapped) tensors of a PyTorch checkpoint or state_dict as NumPy arrays."""
  import torch
  out = {}
  for key, value in _unwrap(checkpoint).items():
    if isinstance(value, torch.Tensor):
      value = value.detach().cpu()
      out[key] = (value.float() if value.is_floating_point() else value).numpy()
  return out


def _resize_pos_embed(pos_embed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """(1, 1 + n*n, D) -> (1, 1 + m*m, D): bicubic on the patch grid, as timm resamples."""
  old, new = math.isqrt(pos_embed.shape[1] - 1), math.isqrt(shape[1] - 1)
  if (pos_embed.ndim != 3 or old * old != pos_embed.shape[1] - 1 or new * new != shape[1] - 1
      or pos_embed.shape[2] != shape[2]):
    return pos_embed  # not a square grid: reported as a shape mismatch
  grid = pos_embed[0, 1:].reshape(old, old, -1).astype(np.float32)
  grid = np.asarray(jax.image.resize(grid, (new, new, grid.shape[-1]), "bicubic"))
  logger.info("load_pretrained: resized pos_embed from a %dx%d to a %dx%d grid.", old, old,
              new, new)
  return np.concatenate([pos_embed[:, :1], grid.reshape(1, new * new, -1)], axis=1)


def to_flax(array: np.ndarray, path: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
  """A checkpoint tensor in our layout for the leaf at ``path`` with ``shape``."""
  name = path[-1]
  if name == "kernel" and array.ndim == 4:  # (out, in, h, w) -> (h, w, in, out)
    array = array.transpose(2, 3, 1, 0)
  elif name == "kernel" and array.ndim == 2:  # (out, in) -> (in, out)
    array = array.T
  elif name == "pos_embed" and array.shape != tuple(shape):
    array = _resize_pos_embed(array, shape)
  if len(shape) == 1 and array.shape == (1, shape[0]):  # Cadene's 52deb4733 file: (1, C)
    array = array[0]
  return array


def _listing(title: str, items: list[str]) -> str:
  shown = "\n    ".join(items[:MAX_LISTED])
  more = f"\n    ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
  return f"  {title} ({len(items)}):\n    {shown}{more}"


def _place(array: np.ndarray, like: Any) -> jax.Array:
  array = array.astype(like.dtype)
  sharding = getattr(like, "sharding", None)
  return jax.device_put(array, sharding) if sharding is not None else jnp.asarray(array)


def load_pretrained(variables: Mapping[str, Any], path: str | Path, backbone: str,
                    strict: bool = True) -> dict[str, Any]:
  """``variables`` with the backbone's params and batch_stats read from ``path``.

  Args:
    variables: the model's variables (arrays, or ``jax.eval_shape`` structs when every backbone
      leaf will be loaded); ``["params"]["backbone"]`` and ``["batch_stats"]["backbone"]`` are
      replaced, sharding and dtype kept; everything else is returned unchanged.
    path: a .safetensors or PyTorch checkpoint in the backbone's layout (see ``LAYOUTS``).
    backbone: the registered backbone name the variables belong to.
    strict: raise on any missing, unexpected or mismatched key (default). False: load what
      matches, keep the rest as initialised, and log what was skipped.
  """
  spec = get_backbone_spec(backbone)
  layout = LAYOUTS[spec.weight_layout]
  checkpoint = read_checkpoint(path)
  targets = {}  # checkpoint key -> (collection, path inside the backbone, current leaf)
  for collection in ("params", "batch_stats"):
    tree = variables.get(collection, {}).get("backbone", {})
    for leaf_path, leaf in traverse_util.flatten_dict(dict(tree)).items():
      targets[checkpoint_key(leaf_path, layout)] = (collection, leaf_path, leaf)
  if not targets:
    raise ValueError("load_pretrained: variables have no ['params']['backbone']; pass the "
                     "variables of a model made by make_embedding_model.")
  loaded, missing, mismatched = {}, [], []
  for key, (collection, leaf_path, leaf) in targets.items():
    if key not in checkpoint:
      missing.append(key)
      continue
    array = to_flax(checkpoint[key], leaf_path, leaf.shape)
    if array.shape != tuple(leaf.shape):
      mismatched.append(f"{key}: checkpoint {tuple(checkpoint[key].shape)}, model expects "
                        f"{tuple(leaf.shape)} (in our layout)")
      continue
    loaded[(collection, leaf_path)] = array
  unused = [key for key in checkpoint if key not in targets and not re.search(COUNTERS, key)]
  ignored = [key for key in unused if re.search(layout.extras, key)]
  unexpected = [key for key in unused if not re.search(layout.extras, key)]
  problems = [_listing(title, items) for title, items in (
      ("missing from the checkpoint", missing), ("unexpected in the checkpoint", unexpected),
      ("shape mismatch", mismatched)) if items]
  header = (f"load_pretrained: {path} does not match backbone {backbone!r} "
            f"({layout.description} layout):\n")
  if problems and strict:
    raise WeightsError(header + "\n".join(problems) + "\nCheck that the file holds weights of "
                       "this architecture; to load only the matching tensors, pass strict=False.")
  if problems:
    logger.warning(header + "\n".join(problems) + "\nstrict=False: these were skipped; the "
                   "model's own values are kept.")
  if ignored:
    logger.info("load_pretrained: ignored the checkpoint's classifier head: %s.",
                ", ".join(ignored[:MAX_LISTED]))
  result = _assemble(variables, loaded)
  _verify(variables, result, loaded, checkpoint, targets)
  logger.info("load_pretrained: %d of %d backbone tensors of %r loaded from %s.", len(loaded),
              len(targets), backbone, path)
  return result


def _assemble(variables: Mapping[str, Any], loaded: dict) -> dict[str, Any]:
  result = dict(variables)
  for collection in ("params", "batch_stats"):
    if collection not in variables or "backbone" not in variables[collection]:
      continue
    flat = traverse_util.flatten_dict(dict(variables[collection]["backbone"]))
    for leaf_path, leaf in flat.items():
      if (collection, leaf_path) in loaded:
        flat[leaf_path] = _place(loaded[(collection, leaf_path)], leaf)
      elif isinstance(leaf, jax.ShapeDtypeStruct):
        raise ValueError(f"load_pretrained: {'/'.join(leaf_path)} is not in the checkpoint and "
                         "the variables are abstract; initialise the model (model.init) before "
                         "loading with strict=False.")
    result[collection] = {**variables[collection],
                          "backbone": traverse_util.unflatten_dict(flat)}
  return result


def _verify(before: Mapping[str, Any], after: Mapping[str, Any], loaded: dict,
            checkpoint: Mapping[str, np.ndarray], targets: dict) -> None:
  """The loaded model is checked: same structure, shapes and dtypes; finite, sane values."""
  if jax.tree.structure(before) != jax.tree.structure(after):
    raise RuntimeError("load_pretrained: the variable tree changed while loading (a bug).")
  for old, new in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    if tuple(old.shape) != tuple(new.shape) or old.dtype != new.dtype:
      raise RuntimeError(f"load_pretrained: a leaf changed from {old.shape} {old.dtype} to "
                         f"{new.shape} {new.dtype} (a bug).")
  bad = [key for key, (collection, leaf_path, _) in targets.items()
         if (collection, leaf_path) in loaded
         and (not np.all(np.isfinite(loaded[(collection, leaf_path)]))
              or (leaf_path[-1] == "var" and np.any(loaded[(collection, leaf_path)] < 0)))]
  if bad:
    raise WeightsError(f"load_pretrained: non-finite values or negative running variances in "
                       f"{', '.join(bad[:MAX_LISTED])}; the checkpoint is corrupt.")
