"""Row normalisation, once per side: ``l2_normalize`` on device (JAX) for the models and the
losses, ``unit_rows`` on host (NumPy) for evaluation, analysis and pictures."""

import jax
import jax.numpy as jnp
import numpy as np

ZERO_ROW_POLICIES = ("keep", "error")


def l2_normalize(x: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
  """x / ||x|| per row in float32; a zero row stays zero, with finite gradients."""
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))


def unit_rows(x, what: str, *, zero_rows: str = "error",
              dtype: type = np.float64) -> np.ndarray:
  """(N, D) copy of ``x`` with every row divided by its norm, on host.

  Args:
    x: (N, D) array-like, N and D at least 1.
    what: the array's name in error messages.
    zero_rows: "error" raises on an all-zero row: analysis on the sphere, where a zero point
      has no direction. "keep" leaves it zero, as ``l2_normalize`` does: retrieval and
      pictures, where a zero embedding then has similarity 0 to everything.
    dtype: float64 for analysis; retrieval passes float32, the precision faiss ranks in.
  Returns:
    The rows x / max(||x||, 1e-12), in ``dtype``.
  Raises:
    ValueError: ``x`` is not a non-empty (N, D) array, a row holds NaN or inf, or (with
      ``zero_rows="error"``) a row is zero.
  """
  if zero_rows not in ZERO_ROW_POLICIES:
    raise ValueError(f"unit_rows: zero_rows must be one of {ZERO_ROW_POLICIES}, got {zero_rows!r}.")
  points = np.array(x, dtype=dtype)
  if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] == 0:
    raise ValueError(f"{what} must be a non-empty (N, E) array, got shape {points.shape}.")
  bad = ~np.isfinite(points).all(axis=1)
  if bad.any():
    raise ValueError(f"{what} has {int(bad.sum())} row(s) with NaN or inf (first: row "
                     f"{int(np.argmax(bad))}); they have no direction. Check the model that "
                     "produced them (a diverged run gives NaN embeddings).")
  norms = np.sqrt(np.einsum("ij,ij->i", points, points))
  if zero_rows == "error" and not norms.all():
    raise ValueError(f"{what} has {int(np.sum(norms == 0))} all-zero row(s) (first: row "
                     f"{int(np.argmin(norms))}); every row must be finite and nonzero to be "
                     "normalised.")
  return points / np.maximum(norms, dtype(1e-12))[:, None]
