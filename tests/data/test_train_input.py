"""Training input: crop distribution, the two modes' agreement, resume, multi-process slicing."""

import dataclasses
import os

import jax
import numpy as np
import pytest
import scipy.stats
from PIL import Image

from pfml_jax.data import (CachedMode, Crops, GrainMode, SamplerSpec, augment_on_device,
                           build_image_cache, make_train_input, place_cache, read_split)
from pfml_jax.data.crops import crop_boxes, crop_variates
from pfml_jax.training.setup import build, open_train_input
from tests.colour_images import write_colour_classes
from tests.tiny_run import tiny_config

# Original sizes (width, height) of the coordinate images: portrait, landscape, square, and
# one far outside the aspect range, which exercises the centre-crop fallback.
SIZES = [(90, 60), (48, 96), (72, 72), (120, 40), (64, 80), (100, 70)]
OUT = 24


def coordinate_image(width: int, height: int) -> np.ndarray:
  """R encodes x / width and G encodes y / height at every pixel centre (B constant)."""
  x = (np.arange(width) + 0.5) / width * 255
  y = (np.arange(height) + 0.5) / height * 255
  image = np.zeros((height, width, 3), np.uint8)
  image[..., 0] = np.rint(x)[None, :]
  image[..., 1] = np.rint(y)[:, None]
  image[..., 2] = 128
  return image


@pytest.fixture(scope="module")
def coordinate_split(tmp_path_factory):
  """An image_folder split of 8 classes x 3 lossless PNG coordinate images of mixed sizes."""
  root = tmp_path_factory.mktemp("coordinates")
  for c in range(16):
    os.makedirs(root / f"class{c:02d}")
    for k in range(3):
      width, height = SIZES[(c + k) % len(SIZES)]
      Image.fromarray(coordinate_image(width, height)).save(root / f"class{c:02d}" / f"{k}.png")
  return read_split("image_folder", str(root), "train")


def recover_boxes(images: np.ndarray) -> np.ndarray:
  """(top, left, height, width) fractions and flip of each crop, from its coordinate colours.

  The columns' mean R is linear in the column index: slope = 255 * width / OUT, intercept =
  255 * left + slope / 2 (a mirrored crop has a negative slope). Same for rows and G. The
  outermost pixels are left out: resampling is not linear where its kernel meets the image
  border.
  """
  centres = np.arange(2, OUT - 2) + 0.5
  result = []
  for image in images.astype(np.float64):
    r = image[2:-2, 2:-2, 0].mean(axis=0)
    g = image[2:-2, 2:-2, 1].mean(axis=1)
    slope_x, intercept_x = np.polyfit(centres, r, 1)
    slope_y, intercept_y = np.polyfit(centres, g, 1)
    flip = slope_x < 0
    width, height = abs(slope_x) * OUT / 255, slope_y * OUT / 255
    left = (intercept_x + slope_x * OUT) / 255 if flip else intercept_x / 255
    result.append((intercept_y / 255, left, height, width, flip))
  return np.array(result)


def _collect(train_input, steps: int) -> tuple[np.ndarray, list]:
  images, batches = [], []
  for step, batch in zip(range(steps), train_input):
    batches.append(batch)
    if "images" in batch:
      images.append(batch["images"])
    else:
      images.append(np.asarray(jax.jit(
          lambda c, b: train_input.device_images(c, b))(train_input.device_data(), batch)))
  return np.concatenate(images), batches


def test_crop_parameters_match_torchvision():
  """Area fraction, aspect ratio and position against RandomResizedCrop.get_params."""
  torch = pytest.importorskip("torch", reason="the reference sampler is torchvision's")
  torchvision = pytest.importorskip("torchvision")
  torch.manual_seed(0)
  for width, height, scale in ((200, 150, (0.08, 1.0)), (300, 60, (0.3, 1.0))):
    reference = np.array([torchvision.transforms.RandomResizedCrop.get_params(
        torch.empty(1, height, width), scale, (3 / 4, 4 / 3)) for _ in range(3000)])
    ours = []
    for step in range(30):
      boxes = crop_boxes(crop_variates(0, step, 100), np.full(100, height), np.full(100, width),
                         scale, (3 / 4, 4 / 3))
      ours.append(np.stack([boxes.top, boxes.left, boxes.height, boxes.width], axis=1))
    ours = np.concatenate(ours)
    for name, statistic in (("area", lambda b: b[:, 2] * b[:, 3] / (width * height)),
                            ("log aspect", lambda b: np.log(b[:, 3] / b[:, 2])),
                            ("top", lambda b: b[:, 0]), ("left", lambda b: b[:, 1])):
      p = scipy.stats.ks_2samp(statistic(ours), statistic(reference)).pvalue
      assert p > 1e-3, (name, width, height, p)


def test_both_modes_crop_the_same_regions(coordinate_split, tmp_path):
  batches = SamplerSpec("class_balanced", 32, 8, seed=5)
  crops = Crops(OUT, scale=(0.2, 1.0), interpolation="bilinear")
  grain_images, grain_batches = _collect(make_train_input(coordinate_split, batches, crops,
                                                          GrainMode(threads=2)), 12)
  cached_input = make_train_input(coordinate_split, batches, crops,
                                  CachedMode(64, str(tmp_path), decode_threads=2))
  cached_images, cached_batches = _collect(cached_input, 12)
  labels = np.concatenate([b["labels"] for b in grain_batches])
  np.testing.assert_array_equal(labels, np.concatenate([b["labels"] for b in cached_batches]))
  # The boxes the sampler asked for, in fractions of each original image.
  expected = np.concatenate([b["boxes"] for b in cached_batches])
  flips = np.concatenate([b["flips"] for b in cached_batches])
  for images in (grain_images, cached_images):
    assert images.shape == (384, OUT, OUT, 3) and images.dtype == np.uint8
    found = recover_boxes(images)
    np.testing.assert_array_equal(found[:, 4].astype(bool), flips)
    np.testing.assert_allclose(found[:, :4], expected, atol=0.03)
  # Flip rate ~ Binomial(384, 1/2) and the crops' distribution: area and aspect (in original
  # pixels) agree between the modes and with torchvision's sampler.
  assert abs(flips.mean() - 0.5) < 4 * 0.5 / np.sqrt(len(flips))
  grain_found, cached_found = recover_boxes(grain_images), recover_boxes(cached_images)
  for column in (lambda b: b[:, 2] * b[:, 3], lambda b: b[:, 3] / b[:, 2]):
    assert scipy.stats.ks_2samp(column(grain_found), column(cached_found)).pvalue > 0.05
  np.testing.assert_allclose(grain_images, cached_images, atol=40)  # same crops, other resampling
  assert np.abs(grain_images.astype(int) - cached_images).mean() < 3


def test_resume_replays_the_same_batches(coordinate_split):
  batches, crops = SamplerSpec("class_balanced", 16, 4, seed=1), Crops(OUT)
  grain = GrainMode(threads=2)
  full, _ = _collect(make_train_input(coordinate_split, batches, crops, grain), 6)
  resumed, _ = _collect(make_train_input(coordinate_split, batches, crops, grain, start_step=4),
                        2)
  np.testing.assert_array_equal(resumed, full[4 * 16:])
  other_seed, _ = _collect(make_train_input(
      coordinate_split, dataclasses.replace(batches, seed=2), crops, grain), 1)
  assert not np.array_equal(other_seed, full[:16])


@pytest.mark.parametrize("mode", ["grain", "cached"])
def test_processes_cover_the_global_batch_exactly_once(coordinate_split, mode, tmp_path):
  how = GrainMode(threads=1) if mode == "grain" else CachedMode(cache_dir=str(tmp_path),
                                                                decode_threads=1)
  arguments = (coordinate_split, SamplerSpec("class_balanced", 24, 6, seed=3), Crops(OUT), how)
  whole = next(iter(make_train_input(*arguments)))
  parts = [next(iter(make_train_input(*arguments, process=(p, 3)))) for p in range(3)]
  assert all(len(part["labels"]) == 8 for part in parts)
  for key in whole:
    np.testing.assert_array_equal(np.concatenate([part[key] for part in parts]), whole[key])


def test_grain_worker_processes_give_the_same_batches(coordinate_split):
  batches, crops = SamplerSpec("class_balanced", 8, 4, seed=4), Crops(OUT)
  in_process, _ = _collect(make_train_input(coordinate_split, batches, crops,
                                            GrainMode(threads=0)), 3)
  iterator = iter(make_train_input(coordinate_split, batches, crops,
                                   GrainMode(workers=2, threads=1)))
  with_workers = np.concatenate([next(iterator)["images"] for _ in range(3)])
  np.testing.assert_array_equal(with_workers, in_process)


def test_cache_file_is_reused_and_rebuilt_when_invalid(coordinate_split, tmp_path):
  first = build_image_cache(coordinate_split, 32, "bicubic", str(tmp_path))
  assert first.path and first.images.shape == (len(coordinate_split), 32, 32, 3)
  np.testing.assert_array_equal(
      np.stack([first.heights, first.widths], 1)[:3],
      [coordinate_split.images[i].shape[:2] for i in range(3)])
  stamp = os.stat(first.path + ".npy").st_mtime_ns
  again = build_image_cache(coordinate_split, 32, "bicubic", str(tmp_path))
  assert os.stat(again.path + ".npy").st_mtime_ns == stamp
  assert isinstance(again.images, np.memmap)
  expected, path = np.array(first.images), first.path
  del first, again  # unmap before the file is replaced
  os.remove(path + ".npy")
  np.save(path + ".npy", np.zeros((2, 32, 32, 3), np.uint8))  # wrong shape: rebuilt
  rebuilt = build_image_cache(coordinate_split, 32, "bicubic", str(tmp_path))
  np.testing.assert_array_equal(rebuilt.images, expected)
  assert build_image_cache(coordinate_split, 24, "bicubic", str(tmp_path)).path != path


def test_sharded_cache_gives_the_replicated_result(coordinate_split):
  images = build_image_cache(coordinate_split, 32, "bilinear", cache_dir="").images[:21]
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
  rng = np.random.default_rng(0)
  indices = rng.integers(0, len(images), 16).astype(np.int32)
  boxes = np.tile(np.array([[0.1, 0.2, 0.6, 0.5]], np.float32), (16, 1))
  flips = rng.random(16) < 0.5
  augment = jax.jit(augment_on_device, static_argnames=("out_size", "interpolation", "mesh",
                                                         "cache_axis"))
  replicated = augment(place_cache(images), indices, boxes, flips, out_size=OUT)
  batch_sharding = jax.NamedSharding(mesh, jax.P("data"))
  sharded = augment(place_cache(images, mesh, "data"),
                    *(jax.device_put(a, batch_sharding) for a in (indices, boxes, flips)),
                    out_size=OUT, mesh=mesh, cache_axis="data")
  # 21 rows on 8 devices: 3 padding rows, never read.
  np.testing.assert_array_equal(np.asarray(sharded), np.asarray(replicated))
  assert sharded.sharding.spec[0] == "data"


def textured_image(width: int, height: int, seed: int) -> np.ndarray:
  """Smooth colour blobs plus fine noise: detail at every scale, like a photograph."""
  rng = np.random.default_rng(seed)
  coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
  smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.int64)
  return np.clip(smooth + rng.integers(-20, 21, smooth.shape), 0, 255).astype(np.uint8)


def textured_split(root, sizes):
  """An image_folder split of lossless PNG textured images of the given (width, height)s."""
  for c in range(16):
    os.makedirs(root / f"class{c:02d}")
    for k in range(3):
      width, height = sizes[(c + k) % len(sizes)]
      Image.fromarray(textured_image(width, height, 3 * c + k)).save(root / f"class{c:02d}" / f"{k}.png")
  return read_split("image_folder", str(root), "train")


def torchvision_crop(image: np.ndarray, top: int, left: int, height: int, width: int,
                     flip: bool, interpolation: str) -> np.ndarray:
  """torchvision's RandomResizedCrop of a PIL image for this box, then the flip."""
  pytest.importorskip("torch", reason="the reference crops are torchvision's")
  transforms = pytest.importorskip("torchvision.transforms")
  mode = getattr(transforms.InterpolationMode, interpolation.upper())
  crop = np.asarray(transforms.functional.resized_crop(
      Image.fromarray(image), top, left, height, width, [OUT, OUT], mode, antialias=True))
  return (crop[:, ::-1] if flip else crop).astype(int)


def torchvision_crops(split, batches, interpolation: str) -> np.ndarray:
  """``torchvision_crop`` of each ORIGINAL image for the batches' boxes and flips."""
  crops = []
  for batch in batches:
    for index, box, flip in zip(batch["indices"], batch["boxes"], batch["flips"]):
      original = split.images[int(index)]
      height, width = original.shape[:2]
      top, left, h, w = np.rint(box * [height, width, height, width]).astype(int)
      crops.append(torchvision_crop(original, top, left, h, w, flip, interpolation))
  return np.stack(crops)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_both_modes_match_torchvision_on_the_original_images(tmp_path, interpolation):
  """Images within the cache size: grain is torchvision's code path, cached its resampler."""
  sizes = [(90, 60), (48, 96), (72, 72), (37, 23), (64, 80), (100, 70), (17, 41)]
  split = textured_split(tmp_path / "images", sizes)
  batches = SamplerSpec("class_balanced", 24, 8, seed=7)
  crops = Crops(OUT, scale=(0.05, 1.0), interpolation=interpolation)
  grain_images, _ = _collect(make_train_input(split, batches, crops, GrainMode(threads=2)), 6)
  cached_input = make_train_input(split, batches, crops,
                                  CachedMode(128, str(tmp_path / "cache"), decode_threads=2))
  cached_images, batches = _collect(cached_input, 6)
  # Every image is stored at its original pixels, at the top left of a 100 x 100 canvas.
  assert cached_input.cache.images.shape[1:] == (100, 100, 3)
  np.testing.assert_array_equal(cached_input.cache.cached_heights, cached_input.cache.heights)
  np.testing.assert_array_equal(cached_input.cache.cached_widths, cached_input.cache.widths)
  reference = torchvision_crops(split, batches, interpolation)
  np.testing.assert_array_equal(grain_images, reference)
  difference = np.abs(cached_images.astype(int) - reference)
  assert difference.max() <= 2 and difference.mean() < 0.05, (difference.max(), difference.mean())


def test_images_larger_than_the_cache_are_downscaled_with_their_aspect(tmp_path):
  """A 300 x 200 original in a 100 px cache: 100 x 67, and crops that downsample (boxes of at
  least ~1.5 x the output side in cached pixels) stay within a few grey levels of torchvision's
  crop of the original: the only extra loss is the one-time antialiased downscale."""
  split = textured_split(tmp_path / "images", [(300, 200), (150, 240)])
  cached_input = make_train_input(split, SamplerSpec("class_balanced", 24, 8, seed=2),
                                  Crops(OUT, scale=(0.5, 1.0), interpolation="bicubic"),
                                  CachedMode(cache_size=100, cache_dir=""))
  cache = cached_input.cache
  assert cache.images.shape[1:] == (100, 100, 3)
  expected = {(200, 300): (67, 100), (240, 150): (100, 62)}
  for height, width, rows, cols in zip(cache.heights, cache.widths, cache.cached_heights,
                                       cache.cached_widths):
    assert (rows, cols) == expected[(height, width)]
  cached_images, batches = _collect(cached_input, 4)
  difference = np.abs(cached_images.astype(int) - torchvision_crops(split, batches, "bicubic"))
  assert difference.mean() < 2 and np.percentile(difference, 99) <= 12, (
      difference.mean(), np.percentile(difference, 99))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_canvas_padding_never_reaches_a_crop(interpolation):
  """Boxes on the right and bottom edges of images smaller than the canvas: the same crops
  (torchvision's, up to rounding) whatever the padding holds."""
  originals = [textured_image(50, 30, 0), textured_image(20, 45, 1)]
  canvas = np.zeros((2, 64, 64, 3), np.uint8)
  for row, image in zip(canvas, originals):
    row[:image.shape[0], :image.shape[1]] = image
  bright = canvas.copy()
  for row, image in zip(bright, originals):
    row[image.shape[0]:], row[:, image.shape[1]:] = 255, 255
  # (top, left, height, width) in pixels: bottom-right corners, upsampled and downsampled.
  pixel_boxes = [(20, 38, 10, 12), (0, 10, 30, 40), (40, 15, 5, 5), (5, 0, 40, 20)]
  indices = np.array([0, 0, 1, 1], np.int32)
  sizes = np.array([originals[i].shape[:2] for i in indices], np.int32)
  boxes = (np.array(pixel_boxes) / np.tile(sizes, 2)).astype(np.float32)
  flips = np.array([False, True, False, True])
  augment = jax.jit(augment_on_device, static_argnames=("out_size", "interpolation"))
  crops = [np.asarray(augment(place_cache(c), indices, boxes, flips, sizes, out_size=OUT,
                              interpolation=interpolation)) for c in (canvas, bright)]
  np.testing.assert_array_equal(crops[0], crops[1])
  for crop, index, box, flip in zip(crops[0], indices, pixel_boxes, flips):
    reference = torchvision_crop(originals[index], *box, flip, interpolation)
    assert np.abs(crop.astype(int) - reference).max() <= 2


def test_a_valid_cache_file_is_reused_without_decoding(coordinate_split, tmp_path,
                                                       monkeypatch):
  first = build_image_cache(coordinate_split, 48, "bilinear", str(tmp_path))
  expected = np.array(first.images)
  # None: every image at its original size, R = the largest original side (120 x 40).
  assert build_image_cache(coordinate_split, None, "bilinear", "").images.shape[1:] == (120, 120, 3)
  monkeypatch.setattr(type(coordinate_split.images), "image",
                      lambda self, index: pytest.fail("decoded an image"))
  again = build_image_cache(coordinate_split, 48, "bilinear", str(tmp_path))
  assert again.path == first.path
  np.testing.assert_array_equal(again.images, expected)


@pytest.mark.parametrize("mode", ["grain", "cached"])
def test_flip_off_mirrors_no_crop_and_on_mirrors_some(coordinate_split, mode, tmp_path):
  """data.flip through both real input paths: the coordinate images are asymmetric (R grows
  left to right), so a mirrored crop shows as a falling R slope."""
  how = (GrainMode(threads=2) if mode == "grain" else
         CachedMode(64, str(tmp_path), decode_threads=2))
  mirrored = {}
  for flip in (False, True):
    images, batches = _collect(make_train_input(
        coordinate_split, SamplerSpec("class_balanced", 32, 8, seed=5),
        Crops(OUT, scale=(0.2, 1.0), flip=flip), how), 3)
    mirrored[flip] = recover_boxes(images)[:, 4].astype(bool)
    if mode == "cached":
      np.testing.assert_array_equal(np.concatenate([b["flips"] for b in batches]),
                                    mirrored[flip])
  assert not mirrored[False].any()
  assert 0.25 < mirrored[True].mean() < 0.75  # Binomial(96, 1/2): ~6 sd either side


@pytest.mark.parametrize("flip", [False, True])
def test_config_data_flip_reaches_the_training_input(tmp_path, flip):
  """The run's set-up hands config.data.flip to the training input it opens."""
  root = tmp_path / "images"
  root.mkdir()
  config = tiny_config(write_colour_classes(root), **{"data.flip": flip,
                                                      "data.input_mode": "grain"})
  train_input = open_train_input(build(config), start_step=0)
  assert train_input.plan.flip is flip
