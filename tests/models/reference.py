"""Shared helpers: random PyTorch reference models and running ours on their weights."""

import jax
import numpy as np

from pfml_jax.models import load_pretrained, make_embedding_model

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def randomize(torch_model, seed: int = 0):
  """Random BatchNorm statistics and affine, LayerNorm affine, biases and CLS token, so that
  every imported tensor matters (fresh models have ones, zeros and unit variances there)."""
  import torch
  generator = torch.Generator().manual_seed(seed)

  def fill(tensor, low, high):
    tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=generator))

  with torch.no_grad():
    for module in torch_model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        fill(module.running_mean, -0.2, 0.2)
        fill(module.running_var, 0.5, 2.0)
      if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
        fill(module.weight, 0.5, 1.5)
      if getattr(module, "bias", None) is not None:
        fill(module.bias, -0.1, 0.1)
    for name, parameter in torch_model.named_parameters():
      if name in ("cls_token", "pos_embed"):
        fill(parameter, -0.05, 0.05)
  return torch_model.eval()


def save_checkpoints(state_dict, directory, name: str, pth: bool = True,
                     pre_zip_pth: bool = False):
  """The state dict as ``name.safetensors`` and (``pth``) ``name.pth``; returns both paths.

  ``pre_zip_pth`` writes the ``.pth`` in torch's pre-1.6 pickle format, like 2017-era files.
  """
  import safetensors.torch
  import torch
  state = {key: value.detach().contiguous().clone() for key, value in state_dict.items()}
  safetensors_path, pth_path = directory / f"{name}.safetensors", directory / f"{name}.pth"
  safetensors.torch.save_file(state, str(safetensors_path))
  if pth:
    torch.save(state, pth_path, _use_new_zipfile_serialization=not pre_zip_pth)
  return safetensors_path, pth_path


def random_images(batch: int, size: int, seed: int = 0) -> np.ndarray:
  """(B, H, W, 3) uint8 RGB."""
  return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def to_torch_input(images: np.ndarray, mean, std, scale: float = 255.0, bgr: bool = False):
  """Normalised NCHW float32 torch tensor, computed independently in float64."""
  import torch
  x = images.astype(np.float64)
  if bgr:
    x = x[..., ::-1]
  x = (x / scale - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
  return torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32).copy())


def abstract_variables(model, image_size: int):
  """Shapes of the model's variables, without running an initialiser."""
  images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), np.uint8)
  return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)


def our_features(backbone: str, path, images: np.ndarray, **model_kwargs) -> np.ndarray:
  """Pooled float32 features of our model with the checkpoint at ``path`` loaded strictly."""
  model = make_embedding_model(backbone, embedding_dim=None, **model_kwargs)
  variables = load_pretrained(abstract_variables(model, images.shape[1]), path, backbone)
  features = jax.jit(lambda v, x: model.apply(v, x, train=False, method="features"))
  return np.asarray(features(variables, images))


def max_relative_error(got: np.ndarray, want: np.ndarray) -> float:
  """max |got - want| / max |want|."""
  return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def assert_same_tree(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
