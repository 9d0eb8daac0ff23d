"""The ViT's attention function against float64 NumPy, on every implementation this host runs."""

import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.models.vit import attention_implementation, dot_product_attention
from tests.models.attention_reference import reference_attention


@pytest.mark.parametrize("implementation", ["auto", "xla"])
def test_attention_matches_softmax_reference(implementation):
  rng = np.random.default_rng(0)
  q, k, v = (rng.normal(size=(2, 197, 3, 16)).astype(np.float32) for _ in range(3))
  got = dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), implementation)
  np.testing.assert_allclose(got, reference_attention(q, k, v), rtol=1e-5, atol=1e-5)


def test_auto_uses_xla_off_gpu_and_rejects_unknown_names():
  assert attention_implementation(jnp.float32) == "xla"
  with pytest.raises(ValueError, match="auto"):
    dot_product_attention(jnp.zeros((1, 2, 1, 8)), jnp.zeros((1, 2, 1, 8)),
                          jnp.zeros((1, 2, 1, 8)), "flash")
