"""Write a backbone's usual pretrained weights to a .safetensors file our configs can point to.

    python -m pfml_jax.models.export_weights --model=resnet50 --out=weights/resnet50.safetensors
    python -m pfml_jax.models.export_weights --model=bninception \
        --checkpoint=bn_inception-52deb4733.pth --out=weights/bninception.safetensors

Needs torch; downloads also need internet and torchvision or timm. ``--source`` overrides the
default download (``SOURCES``): ``torchvision:<arch>.<weights enum>``, ``timm:<model name>``
or ``url:<address of a .pth>``; ``--checkpoint`` converts a local PyTorch file instead.
The file keeps the source's own key names and tensor layout (so it stays readable by PyTorch
tools too); ``load_pretrained`` converts on load. Before returning, the export loads the file
strictly into our model, so a written file is known to fit.
"""

import hashlib
from pathlib import Path

import jax
import numpy as np
from absl import flags

from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.models.embedding import make_embedding_model
from pfml_jax.models.pretrained import load_pretrained, read_checkpoint, torch_state_to_numpy
from pfml_jax.models.registry import get_backbone_spec

SOURCES = {  # the weights DML papers start from
    "resnet50": "torchvision:resnet50.IMAGENET1K_V1",  # the classic 76.1% top-1 weights
    "vit_s16": "timm:vit_small_patch16_224.augreg_in21k_ft_in1k",
    "vit_b16": "timm:vit_base_patch16_224.augreg_in21k_ft_in1k",
    "dino_vits16": "timm:vit_small_patch16_224.dino",  # = DINO's dino_deitsmall16_pretrain.pth
    "bninception": "url:http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-52deb4733.pth",
}


def download(source: str) -> dict[str, np.ndarray]:
  """The state dict named by ``scheme:name`` as NumPy arrays."""
  scheme, _, name = source.partition(":")
  if scheme == "torchvision":
    import torchvision
    arch, _, weights = name.partition(".")
    state = torchvision.models.get_model(arch, weights=weights).state_dict()
  elif scheme == "timm":
    import timm
    state = timm.create_model(name, pretrained=True).state_dict()
  elif scheme == "url":
    import torch
    state = torch.hub.load_state_dict_from_url(name, map_location="cpu", weights_only=True)
  else:
    raise ValueError(f"Unknown source {source!r}: use torchvision:<arch>.<weights>, "
                     "timm:<model name> or url:<address>.")
  return torch_state_to_numpy(state)


def verify(path: Path, model: str) -> int:
  """Loads ``path`` strictly into our model (shapes only; nothing runs); returns its size."""
  spec = get_backbone_spec(model)
  embedding_model = make_embedding_model(model, embedding_dim=None)
  images = jax.ShapeDtypeStruct((1, spec.image_size, spec.image_size, 3), np.uint8)
  abstract = jax.eval_shape(lambda x: embedding_model.init(jax.random.key(0), x), images)
  loaded = load_pretrained(abstract, path, model, strict=True)
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(loaded))


def export(model: str, out: str | Path, checkpoint: str | None = None,
           source: str | None = None) -> Path:
  """Writes the weights to ``out`` and checks they load; returns the path."""
  get_backbone_spec(model)
  if model not in SOURCES:
    raise ValueError(f"No pretrained weights are known for {model!r}; export one of "
                     f"{sorted(SOURCES)}.")
  origin = checkpoint or source or SOURCES[model]
  if checkpoint:
    tensors = read_checkpoint(checkpoint)
  else:
    try:
      tensors = download(origin)
    except (ImportError, OSError) as e:  # no torch/timm/torchvision, no network
      raise RuntimeError(
          f"Could not fetch {origin}: {e}. Run this where torch (+ torchvision or timm) and the "
          "internet are available, or download the PyTorch file yourself and pass "
          "--checkpoint=FILE.") from e
  out = Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  from safetensors.numpy import save_file
  save_file({key: np.ascontiguousarray(value) for key, value in tensors.items()}, str(out),
            metadata={"pfml_jax_backbone": model, "source": str(origin)})
  size = verify(out, model)
  digest = hashlib.sha256(out.read_bytes()).hexdigest()
  print(f"Wrote {out} ({len(tensors)} tensors from {origin}); it loads strictly into "
        f"{model!r} ({size:,} backbone values). sha256 {digest}")
  return out


_FLAGS = flags.FlagValues()
flags.DEFINE_enum("model", None, sorted(SOURCES), "the backbone", flag_values=_FLAGS)
flags.DEFINE_string("out", None, "the .safetensors file to write", flag_values=_FLAGS)
flags.DEFINE_string("checkpoint", None, "convert this local PyTorch file (no download)",
                    flag_values=_FLAGS)
flags.DEFINE_string("source", None, "override the default download (see SOURCES)",
                    flag_values=_FLAGS)
flags.mark_flags_as_required(["model", "out"], flag_values=_FLAGS)


def main(argv: list[str] | None = None) -> None:
  if parse_tool_flags(_FLAGS, argv, __doc__):
    fail("export_weights takes flags only (--help lists them).")
  export(_FLAGS.model, _FLAGS.out, _FLAGS.checkpoint, _FLAGS.source)


if __name__ == "__main__":
  main()
