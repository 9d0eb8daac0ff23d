"""The embedding model: tiny variants run, frozen BatchNorm stays frozen in a train step,
bfloat16 compute, pooling, pixel transforms, parameter names."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from pfml_jax.models import BACKBONES, POOLINGS, make_embedding_model
from tests.models import reference

TINY = ("resnet50_tiny", "bninception_tiny", "vit_tiny")
# The trainer's weight-decay exclusion (pfml_jax/training/optimizer.py), on "model/..." paths.
NO_DECAY = re.compile(r"(bn|norm|Norm)[^/]*/|(^|/)bias$|cls_token|pos_embed")
LABELS = jnp.array([0, 0, 1, 1, 2, 2])


def init(model, images):
  # rbg keys: XLA compiles threefry initialisers slowly on CPU.
  return jax.jit(lambda rng, x: model.init(rng, x, train=False))(jax.random.key(0, impl="rbg"),
                                                                  images)


def leaves(tree, pattern: str = ""):
  return {k: v for k, v in traverse_util.flatten_dict(tree, sep="/").items()
          if re.search(pattern, k)}


@functools.lru_cache(maxsize=None)
def tiny_setup(name: str):
  """A tiny model, its initial variables, 64 px images and its float32 eval embeddings."""
  model = make_embedding_model(name, embedding_dim=32)
  images = reference.random_images(len(LABELS), 64)
  variables = init(model, images)
  return model, variables, images, np.asarray(jax.jit(model.apply)(variables, images))


@pytest.mark.parametrize("name", TINY)
def test_tiny_variant_runs(name):
  _, variables, _, embeddings = tiny_setup(name)
  assert set(variables["params"]) == {"backbone", "head"}
  assert ("batch_stats" in variables) == BACKBONES[name].has_batch_norm
  assert embeddings.shape == (len(LABELS), 32) and embeddings.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
  assert np.min(np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)
                + np.eye(len(LABELS))) > 1e-3  # distinct images, distinct embeddings


def test_train_mode_updates_batch_statistics_like_torch():
  """Running stats move 10% of the way to the batch mean and unbiased variance."""
  model, variables, images, _ = tiny_setup("resnet50_tiny")
  _, updates = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
      variables, images)
  kernel = variables["params"]["backbone"]["conv1"]["kernel"]
  x = model.apply({}, images, method="normalize_pixels")
  out = jax.lax.conv_general_dilated(x, kernel, (2, 2), ((3, 3), (3, 3)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision="highest")
  out = np.asarray(out, np.float64)
  mean, var = out.mean(axis=(0, 1, 2)), out.var(axis=(0, 1, 2), ddof=1)
  new = updates["batch_stats"]["backbone"]["bn1"]
  np.testing.assert_allclose(new["mean"], 0.1 * mean, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(new["var"], 0.9 + 0.1 * var, rtol=1e-4, atol=1e-6)


def adam_step(model, variables, images):
  """One real Adam step on a softmax-over-similarities embedding loss."""
  optimizer = optax.adam(1e-2)

  def loss_fn(params):
    embeddings, updates = model.apply({**variables, "params": params}, images, train=True,
                                      mutable=["batch_stats"])
    logits = embeddings @ embeddings.T / 0.1 - 1e9 * jnp.eye(len(LABELS))
    positives = (LABELS[:, None] == LABELS[None, :]) & ~jnp.eye(len(LABELS), dtype=bool)
    log_p = jax.nn.log_softmax(logits, axis=1)
    return -jnp.sum(jnp.where(positives, log_p, 0.0)) / len(LABELS), updates

  @jax.jit
  def step(params):
    grads, updates = jax.grad(loss_fn, has_aux=True)(params)
    changes, _ = optimizer.update(grads, optimizer.init(params), params)
    return {**variables, **updates, "params": optax.apply_updates(params, changes)}

  return step(variables["params"])


def test_frozen_batch_norm_is_unchanged_by_a_train_step():
  _, variables, images, eval_embeddings = tiny_setup("resnet50_tiny")
  model = make_embedding_model("resnet50_tiny", embedding_dim=32, frozen_bn=True)
  new = adam_step(model, variables, images)
  for path, value in leaves(variables["batch_stats"]).items():
    np.testing.assert_array_equal(leaves(new["batch_stats"])[path], value)
  bn_params = leaves(variables["params"], r"bn[^/]*/(scale|bias)$")
  assert len(bn_params) == 2 * 17  # stem + 4 blocks x (3 + downsample)
  for path, value in bn_params.items():
    np.testing.assert_array_equal(leaves(new["params"])[path], value)
  for path, value in leaves(variables["params"], r"(conv[^/]*|head)/kernel$").items():
    assert not np.array_equal(leaves(new["params"])[path], value), path  # these do train
  # Running statistics in train mode too (so nothing needs to be mutable): train = eval.
  train_mode = jax.jit(lambda v, x: model.apply(v, x, train=True))
  np.testing.assert_allclose(train_mode(variables, images), eval_embeddings, atol=1e-6)


@pytest.mark.parametrize("name", ["resnet50_tiny", "vit_tiny"])
def test_bfloat16_compute_gives_float32_normalised_output(name):
  _, variables, images, want = tiny_setup(name)
  model = make_embedding_model(name, embedding_dim=32, dtype=jnp.bfloat16)
  jaxpr = str(jax.make_jaxpr(model.apply)(variables, images))
  op = "dot_general" if name.startswith("vit") else "conv_general_dilated"
  assert re.search(rf"bf16\[[^\]]*\] = {op}", jaxpr), f"no bfloat16 {op}"
  got = np.asarray(jax.jit(model.apply)(variables, images))
  assert got.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
  assert np.min(np.sum(got * want, axis=1)) > 0.99  # cosine to the float32 embedding


@pytest.mark.parametrize("name", TINY)
def test_parameter_names_fit_the_trainers_groups_and_decay_mask(name):
  model = make_embedding_model(name, embedding_dim=16)
  params = reference.abstract_variables(model, 64)["params"]
  assert set(params) == {"backbone", "head"}
  for path, leaf in leaves({"model": params}).items():
    expect_no_decay = (path.endswith(("/bias", "cls_token", "pos_embed"))
                       or leaf.ndim == 1)  # norm scales are the only other vectors
    assert bool(NO_DECAY.search(path)) == expect_no_decay, path


def test_poolings_against_numpy():
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
  np.testing.assert_allclose(POOLINGS["avg"](jnp.asarray(x)), x.mean(axis=(1, 2)), rtol=1e-6)
  np.testing.assert_array_equal(POOLINGS["max"](jnp.asarray(x)), x.max(axis=(1, 2)))
  np.testing.assert_allclose(POOLINGS["avg+max"](jnp.asarray(x)),
                             x.mean(axis=(1, 2)) + x.max(axis=(1, 2)), rtol=1e-6)
  np.testing.assert_array_equal(POOLINGS["token"](jnp.asarray(x[:, 0])), x[:, 0, 0])


@pytest.mark.parametrize("name, want", [
    ("resnet50", (np.array([10, 20, 30]) / 255 - reference.IMAGENET_MEAN) /
     reference.IMAGENET_STD),
    ("bninception", np.array([30 - 104, 20 - 117, 10 - 128])),  # BGR, 0..255, Caffe mean
    ("vit_s16", np.array([10, 20, 30]) / 127.5 - 1),
    ("dino_vits16", (np.array([10, 20, 30]) / 255 - reference.IMAGENET_MEAN) /
     reference.IMAGENET_STD)])
def test_pixel_transform(name, want):
  model = make_embedding_model(name, embedding_dim=None)
  pixels = np.array([[[[10, 20, 30]]]], np.uint8)
  for images in (pixels, pixels.astype(np.float32)):
    got = model.apply({}, images, method="normalize_pixels")
    np.testing.assert_allclose(got[0, 0, 0], want, rtol=1e-6, atol=1e-6)


def test_configuration_errors_say_what_to_do():
  with pytest.raises(ValueError, match="choose one of"):
    make_embedding_model("resnet18", 512)
  with pytest.raises(ValueError, match="'token'"):
    make_embedding_model("vit_s16", 384, pooling="avg")
  with pytest.raises(ValueError, match="positive or None"):
    make_embedding_model("resnet50", 0)
  assert make_embedding_model("vit_s16", 384).pooling == "token"
  assert make_embedding_model("resnet50", 512).pooling == "avg"


def test_head_initialisers_match_their_reference_code():
  """kaiming_fan_out: torch's kaiming_normal_(mode='fan_out') on the (out, in) weight, i.e.
  std sqrt(2 / out) (Proxy Anchor, HIST); orthogonal: orthonormal columns (Hyp-DML)."""
  images = reference.random_images(2, 64)
  kernels = {}
  for scheme in ("kaiming_fan_out", "orthogonal"):
    model = make_embedding_model("vit_tiny", embedding_dim=48, head_init=scheme)
    kernels[scheme] = np.asarray(init(model, images)["params"]["head"]["kernel"])  # (64, 48)
  assert np.std(kernels["kaiming_fan_out"]) == pytest.approx(np.sqrt(2 / 48), rel=0.1)
  orthogonal = kernels["orthogonal"]
  np.testing.assert_allclose(orthogonal.T @ orthogonal, np.eye(48), atol=1e-5)
  with pytest.raises(ValueError, match="head_init='xavier'"):
    make_embedding_model("vit_tiny", embedding_dim=8, head_init="xavier")


def test_layer_norm_output_matches_torch_layer_norm_without_affine():
  """embedding_norm="layer_norm" (HIST): the head's output through a LayerNorm without scale
  and shift, eps 1e-5; "l2" (the default) gives its unit vectors."""
  images = reference.random_images(3, 64)
  model = make_embedding_model("vit_tiny", embedding_dim=24, embedding_norm="layer_norm")
  variables = init(model, images)
  got = np.asarray(model.apply(variables, images), np.float64)
  head = np.asarray(model.apply(variables, images, method=lambda m, x: m.head(m.features(x))),
                    np.float64)
  centred = head - head.mean(axis=1, keepdims=True)
  want = centred / np.sqrt((centred**2).mean(axis=1, keepdims=True) + 1e-5)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  default = make_embedding_model("vit_tiny", embedding_dim=24)
  unit = np.asarray(default.apply(variables, images), np.float64)
  np.testing.assert_allclose(unit, head / np.linalg.norm(head, axis=1, keepdims=True),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="embedding_norm='batch'"):
    make_embedding_model("vit_tiny", embedding_dim=8, embedding_norm="batch")
