"""The cached mode's accelerator side: the image cache on device, crops and flips in JAX.

``place_cache`` puts the (N, R, R, 3) uint8 cache on the devices, replicated or split along a
mesh axis. ``augment_on_device`` (jit-able, call it inside the train step) gathers a batch's
cached images and resamples each crop box (fractions of the original image, from
``crops.crop_boxes``) to out_size x out_size the way PIL resizes the cropped box (what
torchvision's RandomResizedCrop and the grain mode do): a separable, antialiased
bilinear/bicubic filter whose taps cover only the box's pixels, as two float32 matrix
products per image (horizontal, then vertical, each rounded to 8 bits as PIL), then mirrors
the flipped ones.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pfml_jax import checks


def _padded_rows(images: np.ndarray, index: tuple, total_rows: int) -> np.ndarray:
  """``images[index]`` for a row range that may run past the real rows (zero padding)."""
  rows = index[0]
  start, stop = rows.start or 0, rows.stop if rows.stop is not None else total_rows
  block = np.asarray(images[start:min(stop, len(images))])
  if stop > len(images):
    padding = np.zeros((stop - max(start, len(images)),) + images.shape[1:], images.dtype)
    block = np.concatenate([block, padding])
  return block[(slice(None),) + tuple(index[1:])]


def place_cache(images: np.ndarray, mesh: jax.sharding.Mesh | None = None,
                axis: str | None = None) -> jax.Array:
  """The image cache as a device array.

  Args:
    images: (N, R, R, 3) uint8, e.g. ``ImageCache.images`` (may be memory-mapped; every
      process of a multi-host run passes the whole cache and uploads its devices' part).
    mesh: the training mesh; None puts the cache on the default device.
    axis: None replicates the cache on every device of ``mesh``; a mesh axis name splits its
      rows across that axis (rows padded to a multiple of the axis size), for caches larger
      than one device's memory.
  """
  if mesh is None:
    return jax.device_put(np.asarray(images))
  placed = placed_cache_shape(images.shape, mesh, axis)
  return jax.make_array_from_callback(placed.shape, placed.sharding,
                                      lambda index: _padded_rows(images, index, placed.shape[0]))


def placed_cache_shape(shape: tuple[int, ...], mesh: jax.sharding.Mesh,
                       axis: str | None = None) -> jax.ShapeDtypeStruct:
  """The global shape, dtype and sharding ``place_cache`` gives an (N, R, R, 3) cache on
  ``mesh``: rows padded to a multiple of the ``axis`` size when split along it."""
  rows = shape[0]
  if axis is not None:
    rows = -(-rows // mesh.shape[axis]) * mesh.shape[axis]
  return jax.ShapeDtypeStruct((rows,) + tuple(shape[1:]), np.uint8,
                              sharding=jax.NamedSharding(mesh, jax.P(axis)))


def _gather_sharded(cache: jax.Array, indices: jax.Array, mesh: jax.sharding.Mesh,
                    axis: str) -> jax.Array:
  """``cache[indices]`` for a cache split along ``axis``: each device serves its own rows."""

  def local(block: jax.Array, local_indices: jax.Array) -> jax.Array:
    wanted = jax.lax.all_gather(local_indices, axis, tiled=True)
    offset = wanted - jax.lax.axis_index(axis) * block.shape[0]
    mine = (offset >= 0) & (offset < block.shape[0])
    rows = block[jnp.clip(offset, 0, block.shape[0] - 1)]
    rows = jnp.where(mine[:, None, None, None], rows, jnp.zeros_like(rows))
    # Exactly one device holds each row, so the sum is that row; each device keeps its part.
    return jax.lax.psum_scatter(rows, axis, scatter_dimension=0, tiled=True)

  return jax.shard_map(local, mesh=mesh, in_specs=(jax.P(axis), jax.P(axis)),
                       out_specs=jax.P(axis))(cache, indices)


def _triangle(x: jax.Array) -> jax.Array:
  return jnp.maximum(1 - jnp.abs(x), 0)


def _keys_cubic(x: jax.Array, a: float = -0.5) -> jax.Array:
  x = jnp.abs(x)
  near = ((a + 2) * x - (a + 3)) * x * x + 1
  far = (((x - 5) * x + 8) * x - 4) * a
  return jnp.where(x < 1, near, jnp.where(x < 2, far, 0))


# PIL's bilinear (support 1) and bicubic (support 2) filters; both are 0 beyond their support.
_KERNELS = {"bilinear": _triangle, "bicubic": _keys_cubic}


def _snap(x: jax.Array) -> jax.Array:
  """Whole pixel coordinates that float32 fractions x sizes missed by rounding."""
  nearest = jnp.round(x)
  return jnp.where(jnp.abs(x - nearest) < 1e-3, nearest, x)


def _resample_weights(start: jax.Array, length: jax.Array, size: jax.Array, canvas: int,
                      out_size: int, interpolation: str) -> jax.Array:
  """(out_size, canvas) weights of PIL's resample of [start, start + length) along one axis.

  Output o is centred at start + (o + 0.5) * scale, scale = length / out_size; input pixel j
  weighs K((j + 0.5 - centre) / max(scale, 1)), for the pixels the box covers (and the image,
  never the canvas padding) only, normalised to sum 1.
  """
  kernel = _KERNELS[interpolation]
  start, stop = _snap(start), _snap(start + length)
  scale = (stop - start) / out_size
  filterscale = jnp.maximum(scale, 1.0)
  centre = start + (jnp.arange(out_size, dtype=jnp.float32) + 0.5) * scale
  pixels = jnp.arange(canvas, dtype=jnp.float32)
  inside = (pixels >= jnp.floor(start)) & (pixels < jnp.ceil(stop)) & (pixels < size)
  weights = kernel((pixels[None, :] + 0.5 - centre[:, None]) / filterscale)
  weights = jnp.where(inside[None, :], weights, 0.0)
  return weights / jnp.sum(weights, axis=1, keepdims=True)


def _to_levels(x: jax.Array) -> jax.Array:
  return jnp.clip(jnp.floor(x + 0.5), 0, 255)


def _crop_one(image: jax.Array, box: jax.Array, flip: jax.Array, size: jax.Array,
              out_size: int, interpolation: str) -> jax.Array:
  canvas = image.shape[0]
  size = size.astype(jnp.float32)
  weights = functools.partial(_resample_weights, canvas=canvas, out_size=out_size,
                              interpolation=interpolation)
  rows = weights(box[0] * size[0], box[2] * size[0], size[0])
  cols = weights(box[1] * size[1], box[3] * size[1], size[1])
  # Horizontal pass, then vertical, each rounded half up and clipped to 0..255, as PIL does.
  wide = _to_levels(jnp.einsum("rcx,pc->rpx", image.astype(jnp.float32), cols,
                               precision=jax.lax.Precision.HIGHEST))
  out = _to_levels(jnp.einsum("or,rpx->opx", rows, wide, precision=jax.lax.Precision.HIGHEST))
  out = jnp.where(flip, out[:, ::-1], out)
  return out.astype(jnp.uint8)


def augment_on_device(cache: jax.Array, indices: jax.Array, boxes: jax.Array,
                      flips: jax.Array, sizes: jax.Array | None = None, *, out_size: int,
                      interpolation: str = "bilinear",
                      mesh: jax.sharding.Mesh | None = None,
                      cache_axis: str | None = None) -> jax.Array:
  """Random-resized crops of cached images, on the accelerator.

  Nine parameters on purpose: the five arrays a cached-mode batch carries, and the four that
  jit takes as static (output side, filter, and the cache's placement ``mesh``/``cache_axis``,
  as ``place_cache`` placed it); grouping them would only rename the batch's own keys.

  Args:
    cache: (N, R, R, 3) uint8 from ``place_cache``.
    indices: (B,) int32 rows of the batch's images.
    boxes: (B, 4) float32 crop (top, left, height, width) as fractions of the image.
    flips: (B,) bool, mirror the crop horizontally.
    sizes: (B, 2) int32 cached (height, width) of each image at the top left of its canvas
      (``ImageCache.cached_heights`` / ``cached_widths``); None: images fill the canvas.
    out_size: output side S.
    interpolation: "bilinear" or "bicubic" (antialiased when shrinking).
    mesh, cache_axis: give both when the cache is split along ``cache_axis`` (the batch must
      then be sharded along the same axis).
  Returns:
    (B, S, S, 3) uint8 images.
  """
  if cache_axis is None:
    images = jnp.take(cache, indices, axis=0)
  else:
    images = _gather_sharded(cache, indices, mesh, cache_axis)
  checks.interpolation(interpolation)
  if sizes is None:
    sizes = jnp.full_like(boxes[:, :2], cache.shape[1], dtype=jnp.int32)  # sharded as boxes
  crop = functools.partial(_crop_one, out_size=out_size, interpolation=interpolation)
  return jax.vmap(crop)(images, boxes, flips, sizes)
