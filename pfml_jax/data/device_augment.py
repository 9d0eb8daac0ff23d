"""The cached mode's accelerator side: the image cache on device, crops and flips in JAX.

``place_cache`` puts the (N, R, R, 3) uint8 cache on the devices, replicated or split along a
mesh axis. ``augment_on_device`` (jit-able, call it inside the train step) gathers a batch's
cached images and resamples each crop box (fractions of the original image, from
``crops.crop_boxes``) to out_size x out_size with an antialiased bilinear/bicubic filter, like
PIL's ``resize(box=...)`` in the grain mode, then mirrors the flipped ones.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pfml_jax.data.crops import INTERPOLATIONS


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
  rows = len(images)
  if axis is not None:
    rows = -(-rows // mesh.shape[axis]) * mesh.shape[axis]
  sharding = jax.NamedSharding(mesh, jax.P(axis))
  return jax.make_array_from_callback((rows,) + images.shape[1:], sharding,
                                      lambda index: _padded_rows(images, index, rows))


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


def _crop_one(image: jax.Array, box: jax.Array, flip: jax.Array, out_size: int,
              method: str) -> jax.Array:
  rows, cols = image.shape[0], image.shape[1]
  top, left = box[0] * rows, box[1] * cols
  height, width = box[2] * rows, box[3] * cols
  scale = jnp.stack([out_size / height, out_size / width])
  translation = -jnp.stack([top, left]) * scale
  out = jax.image.scale_and_translate(image.astype(jnp.float32), (out_size, out_size, 3),
                                      (0, 1), scale, translation, method=method,
                                      antialias=True)
  out = jnp.where(flip, out[:, ::-1], out)
  return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8)


def augment_on_device(cache: jax.Array, indices: jax.Array, boxes: jax.Array,
                      flips: jax.Array, *, out_size: int, interpolation: str = "bilinear",
                      mesh: jax.sharding.Mesh | None = None,
                      cache_axis: str | None = None) -> jax.Array:
  """Random-resized crops of cached images, on the accelerator.

  Args:
    cache: (N, R, R, 3) uint8 from ``place_cache``.
    indices: (B,) int32 rows of the batch's images.
    boxes: (B, 4) float32 crop (top, left, height, width) as fractions of the image.
    flips: (B,) bool, mirror the crop horizontally.
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
  crop = functools.partial(_crop_one, out_size=out_size, method=INTERPOLATIONS[interpolation][1])
  return jax.vmap(crop)(images, boxes, flips)
