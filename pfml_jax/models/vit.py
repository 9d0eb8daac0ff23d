"""Vision Transformer (ViT-S/16, ViT-B/16, DINO ViT-S/16) in timm's layout, NHWC input.

Patch embedding (a stride-16 convolution with bias), a learned CLS token, learned position
embeddings for CLS + patches (their number is fixed by the image size the model is initialised
with; ``load_pretrained`` resizes checkpoints bicubically), pre-norm blocks
``x + attn(norm1(x))``, ``x + mlp(norm2(x))`` with a fused qkv projection, exact (erf) GELU,
LayerNorm eps 1e-6, and a final LayerNorm. No dropout or drop-path (timm's defaults).
Returns the normed (B, 1 + patches, width) token sequence; the embedding model takes the CLS
token. LayerNorm statistics are float32; matmuls run in ``dtype``.

Attention is ``jax.nn.dot_product_attention``. ``attention="auto"`` (default) picks cuDNN's
fused (flash) kernel on NVIDIA GPUs for bfloat16/float16 when cuDNN accepts the shapes, and
XLA's implementation otherwise (CPU, TPU, float32); "xla" or "cudnn" force one. cuDNN runs on the
sequence padded with masked tokens to a multiple of ``cudnn_token_multiple`` (8: 197 -> 200).
The exact GELU (``gelu="fused"``) computes in float32 and recomputes erf in its backward pass.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn

from pfml_jax.platforms import default_platform

FUSED_DTYPES = (jnp.bfloat16, jnp.float16)
# cuDNN's fused attention runs on the token sequence padded with masked tokens to a multiple of
# this: JAX (0.10, 0.11) refuses cuDNN attention for odd lengths in training (its check takes
# every call for one with a bias), which silently sent "auto" to XLA for ViTs' 1 + 14 * 14 tokens.
CUDNN_TOKEN_MULTIPLE = 8
# timm's init for a model trained from scratch; pretrained runs replace all of it.
dense_init = nn.initializers.truncated_normal(0.02)


ATTENTION = ("auto", "xla", "cudnn")


def attention_implementation(dtype: Any, platform: str | None = None) -> str:
  """What ``attention="auto"`` tries first: 'cudnn' on CUDA for bfloat16/float16, else 'xla'.

  ``platform`` (see ``pfml_jax.platforms``): where the model runs; None: the default device's.
  """
  if (platform or default_platform()) == "cuda" and jnp.dtype(dtype) in FUSED_DTYPES:
    return "cudnn"
  return "xla"


def padded_attention(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, token_multiple: int,
                     implementation: str = "cudnn") -> jnp.ndarray:
  """Attention on (B, T, heads, head_dim) computed on the sequence padded with masked tokens to a
  multiple of ``token_multiple`` (1: unpadded): the same maths as unpadded."""
  batch, tokens = q.shape[:2]
  padded = -(-tokens // token_multiple) * token_multiple
  if padded == tokens:
    return jax.nn.dot_product_attention(q, k, v, implementation=implementation)
  pad = lambda x: jnp.pad(x, ((0, 0), (0, padded - tokens), (0, 0), (0, 0)))
  lengths = jnp.full((batch,), tokens, jnp.int32)
  out = jax.nn.dot_product_attention(pad(q), pad(k), pad(v), query_seq_lengths=lengths,
                                     key_value_seq_lengths=lengths,
                                     implementation=implementation)
  return out[:, :tokens]


def dot_product_attention(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray,
                          implementation: str = "auto",
                          token_multiple: int = CUDNN_TOKEN_MULTIPLE,
                          platform: str | None = None) -> jnp.ndarray:
  """Softmax(q k^T / sqrt(d)) v on (B, T, heads, head_dim).

  "auto": cuDNN where ``attention_implementation`` says so; cuDNN rejects unsupported shapes,
  GPUs or library versions while tracing, and the XLA implementation (the same maths) runs then.
  cuDNN runs on the sequence padded to a multiple of ``token_multiple`` (``padded_attention``).
  """
  if implementation not in ATTENTION:
    raise ValueError(f"attention must be one of {ATTENTION}, got {implementation!r}.")
  if implementation == "auto" and attention_implementation(q.dtype, platform) == "cudnn":
    try:
      return padded_attention(q, k, v, token_multiple)
    except (NotImplementedError, RuntimeError, ValueError):
      pass
  if implementation == "cudnn":
    return padded_attention(q, k, v, token_multiple)
  return jax.nn.dot_product_attention(q, k, v, implementation="xla")


class Attention(nn.Module):
  """Multi-head self-attention with timm's fused ``qkv`` and ``proj`` linears."""

  num_heads: int
  dtype: Any
  attention: str = "auto"
  token_multiple: int = CUDNN_TOKEN_MULTIPLE  # cuDNN's padded sequence length multiple
  platform: str | None = None  # where it runs (see attention_implementation)

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    batch, tokens, width = x.shape
    head_dim = width // self.num_heads
    qkv = nn.Dense(3 * width, dtype=self.dtype, kernel_init=dense_init, name="qkv")(x)
    # timm's output order of qkv is (q|k|v, head, head_dim).
    qkv = qkv.reshape(batch, tokens, 3, self.num_heads, head_dim)
    out = dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], self.attention,
                                self.token_multiple, self.platform)
    return nn.Dense(width, dtype=self.dtype, kernel_init=dense_init,
                    name="proj")(out.reshape(batch, tokens, width))


SQRT_HALF = 0.5**0.5
INV_SQRT_2PI = (2 * math.pi)**-0.5


@jax.custom_vjp
def gelu(x: jnp.ndarray) -> jnp.ndarray:
  """Exact GELU, x/2 (1 + erf(x / sqrt 2)) as PyTorch computes it, in float32 for any dtype.

  The backward pass recomputes erf from x: nothing but x is kept (JAX's derivative of
  ``jax.nn.gelu`` keeps erfc(-x / sqrt 2) too, an extra write and read of the MLP's widest
  activation).
  """
  x32 = x.astype(jnp.float32)
  return (0.5 * x32 * (1.0 + jax.lax.erf(x32 * SQRT_HALF))).astype(x.dtype)


def _gelu_fwd(x):
  return gelu(x), x


def _gelu_bwd(x, d_y):
  x32 = jax.lax.optimization_barrier(x).astype(jnp.float32)  # recompute, don't share with fwd
  slope = 0.5 * (1.0 + jax.lax.erf(x32 * SQRT_HALF)) + x32 * INV_SQRT_2PI * jnp.exp(
      -0.5 * x32 * x32)
  return ((d_y.astype(jnp.float32) * slope).astype(x.dtype),)


gelu.defvjp(_gelu_fwd, _gelu_bwd)
# "fused": ``gelu`` above; "jax": ``jax.nn.gelu(approximate=False)`` (erfc in the compute dtype).
GELUS = {"fused": gelu, "jax": lambda x: nn.gelu(x, approximate=False)}


class Mlp(nn.Module):
  """fc1 -> exact GELU -> fc2."""

  hidden: int
  dtype: Any
  gelu: str = "fused"  # a key of GELUS

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    y = nn.Dense(self.hidden, dtype=self.dtype, kernel_init=dense_init, name="fc1")(x)
    y = GELUS[self.gelu](y)
    return nn.Dense(x.shape[-1], dtype=self.dtype, kernel_init=dense_init, name="fc2")(y)


def layer_norm(name: str, dtype: Any) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=1e-6, dtype=dtype, name=name)


class Block(nn.Module):
  """Pre-norm transformer block."""

  num_heads: int
  mlp_ratio: float
  dtype: Any
  attention: str = "auto"
  token_multiple: int = CUDNN_TOKEN_MULTIPLE
  gelu: str = "fused"
  platform: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    attn = Attention(self.num_heads, self.dtype, self.attention, self.token_multiple,
                     self.platform, name="attn")
    x = x + attn(layer_norm("norm1", self.dtype)(x))
    hidden = int(x.shape[-1] * self.mlp_ratio)
    mlp = Mlp(hidden, self.dtype, self.gelu, name="mlp")
    return x + mlp(layer_norm("norm2", self.dtype)(x))


class VisionTransformer(nn.Module):
  """ViT with a CLS token; defaults are ViT-S/16."""

  patch_size: int = 16
  width: int = 384
  depth: int = 12
  num_heads: int = 6
  mlp_ratio: float = 4.0
  attention: str = "auto"  # "auto", "xla" or "cudnn" (see dot_product_attention)
  cudnn_token_multiple: int = CUDNN_TOKEN_MULTIPLE  # cuDNN pads the sequence to a multiple
  gelu: str = "fused"  # the exact GELU's implementation, a key of GELUS
  dtype: Any = jnp.float32
  platform: str | None = None  # where it runs ("cuda", "tpu", ...; None: the default device)

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    del train  # no dropout, no BatchNorm: train and eval are the same function
    p = self.patch_size
    if x.shape[1] % p or x.shape[2] % p:
      raise ValueError(f"VisionTransformer: image size {x.shape[1:3]} is not a multiple of the "
                       f"patch size {p}; crop or resize to a multiple of {p}.")
    x = nn.Conv(self.width, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype,
                kernel_init=nn.initializers.lecun_uniform(), name="patch_embed")(x)
    batch, grid_h, grid_w, _ = x.shape
    x = x.reshape(batch, grid_h * grid_w, self.width)
    cls_token = self.param("cls_token", nn.initializers.normal(1e-6), (1, 1, self.width),
                           jnp.float32)
    pos_embed = self.param("pos_embed", nn.initializers.truncated_normal(0.02),
                           (1, 1 + grid_h * grid_w, self.width), jnp.float32)
    x = jnp.concatenate([jnp.broadcast_to(cls_token.astype(x.dtype), (batch, 1, self.width)),
                         x], axis=1)
    x = x + pos_embed.astype(x.dtype)
    for index in range(self.depth):
      x = Block(self.num_heads, self.mlp_ratio, self.dtype, self.attention,
                self.cudnn_token_multiple, self.gelu, self.platform,
                name=f"blocks_{index}")(x)
    return layer_norm("norm", self.dtype)(x)
