"""Row normalisation on device (l2_normalize) and on host (unit_rows) against float64 NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.numerics import l2_normalize, unit_rows


def reference(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_both_agree_with_float64_division():
  x = np.random.default_rng(0).normal(size=(20, 7)) * np.logspace(-3, 3, 20)[:, None]
  np.testing.assert_allclose(unit_rows(x, "x"), reference(x), rtol=1e-15)
  np.testing.assert_allclose(l2_normalize(jnp.asarray(x, jnp.float32)), reference(x), rtol=1e-6)
  ranked = unit_rows(x, "x", zero_rows="keep", dtype=np.float32)
  assert ranked.dtype == np.float32 and unit_rows(x, "x").dtype == np.float64
  np.testing.assert_allclose(ranked, reference(x), rtol=1e-6)


def test_zero_rows_follow_the_policy_named():
  x = np.array([[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_array_equal(unit_rows(x, "x", zero_rows="keep"), [[0.6, 0.8], [0.0, 0.0]])
  np.testing.assert_allclose(l2_normalize(jnp.asarray(x)), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-7)
  gradient = jax.grad(lambda v: jnp.sum(l2_normalize(v)))(jnp.asarray(x, jnp.float32))
  assert np.all(np.isfinite(gradient))
  with pytest.raises(ValueError, match="points has 1 all-zero row\\(s\\) \\(first: row 1\\)"):
    unit_rows(x, "points")
  with pytest.raises(ValueError, match="zero_rows must be one of"):
    unit_rows(x, "x", zero_rows="skip")


def test_bad_rows_and_shapes_are_named():
  with pytest.raises(ValueError, match="x has 1 row\\(s\\) with NaN or inf \\(first: row 1\\)"):
    unit_rows([[1.0, 0.0], [np.nan, 1.0]], "x", zero_rows="keep")
  for shape in ((3,), (0, 4), (2, 0)):
    with pytest.raises(ValueError, match="non-empty \\(N, E\\) array"):
      unit_rows(np.ones(shape), "x")
