"""Multi-head self-attention: projections, rotary positions and the attention kernel.

The kernel is `jax.nn.dot_product_attention`, so on GPU the fused cuDNN
implementation can be chosen by config and XLA's is used elsewhere.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from lm.model.layers import const_param, normal_param

AttentionImpl = Literal["xla", "cudnn"] | None


def rotary_tables(positions_T: jax.Array, head_dim: int, base: float = 10000.0):
  """Returns (sin, cos) tables of shape [T, head_dim // 2] for rotary embeddings."""
  inv_freq = 1.0 / (base ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  angles_TH = positions_T.astype(jnp.float32)[:, None] * inv_freq[None, :]
  return jnp.sin(angles_TH), jnp.cos(angles_TH)


def apply_rotary(x_BTNH: jax.Array, sin_TH: jax.Array, cos_TH: jax.Array) -> jax.Array:
  """Rotates pairs (first half, second half) of each head's features by position."""
  x1, x2 = jnp.split(x_BTNH.astype(jnp.float32), 2, axis=-1)
  sin, cos = sin_TH[None, :, None, :], cos_TH[None, :, None, :]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BTNH.dtype)


class SelfAttention(nnx.Module):
  """Causal (or bidirectional) multi-head self-attention with fused QKV projection."""

  def __init__(self, d_model: int, num_heads: int, *, num_layers: int, use_bias: bool,
               rotary: bool, impl: AttentionImpl, param_dtype, compute_dtype, rngs: nnx.Rngs):
    head_dim = d_model // num_heads
    self.num_heads, self.head_dim = num_heads, head_dim
    self.rotary, self.impl, self.compute_dtype = rotary, impl, compute_dtype
    std = 0.02
    self.w_qkv = normal_param(rngs, (d_model, 3, num_heads, head_dim),
                              ("embed", None, "heads", "head_dim"), std, param_dtype)
    # GPT-2: residual projections scaled by 1/sqrt(2 * layers) so the residual stream stays O(1).
    self.w_out = normal_param(rngs, (num_heads, head_dim, d_model), ("heads", "head_dim", "embed"),
                              std / (2 * num_layers) ** 0.5, param_dtype)
    self.b_qkv = (const_param((3, num_heads, head_dim), (None, "heads", "head_dim"), 0.0, param_dtype)
                  if use_bias else None)
    self.b_out = const_param((d_model,), ("embed",), 0.0, param_dtype) if use_bias else None

  def __call__(self, x_BTD: jax.Array, *, causal: bool = True) -> jax.Array:
    dt = self.compute_dtype
    qkv = jnp.einsum("btd,dcnh->btcnh", x_BTD.astype(dt), self.w_qkv[...].astype(dt))
    if self.b_qkv is not None:
      qkv = qkv + self.b_qkv[...].astype(dt)
    q_BTNH, k_BTNH, v_BTNH = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if self.rotary:
      sin, cos = rotary_tables(jnp.arange(x_BTD.shape[1]), self.head_dim)
      q_BTNH, k_BTNH = apply_rotary(q_BTNH, sin, cos), apply_rotary(k_BTNH, sin, cos)
    out_BTNH = jax.nn.dot_product_attention(q_BTNH, k_BTNH, v_BTNH, is_causal=causal,
                                            implementation=self.impl)
    y_BTD = jnp.einsum("btnh,nhd->btd", out_BTNH, self.w_out[...].astype(dt))
    if self.b_out is not None:
      y_BTD = y_BTD + self.b_out[...].astype(dt)
    return y_BTD
