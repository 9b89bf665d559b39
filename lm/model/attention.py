"""Multi-head self-attention (grouped-query when there are fewer KV heads): projections,
QK-norm, rotary positions, the attention kernel, KV cache.

The kernel is `jax.nn.dot_product_attention`, so on GPU the fused cuDNN
implementation can be chosen by config and XLA's is used elsewhere. With a `KVCache` the
layer writes this call's keys and values into preallocated slots and attends to every slot
written so far (prefill, then one token per decode step).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from lm.model import mup
from lm.model.config import DTYPES, ExecutionConfig, TransformerConfig
from lm.model.layers import INIT_STD, RMSNorm, const_param, normal_param
from lm.model.numerics import add_bias, add_bias_in_float32, separate_qkv_projection


def rotary_frequencies(cfg: TransformerConfig) -> tuple[float, ...]:
  """The angular frequency of each rotated feature pair (head_dim // 2 of them), with the
  config's context-extension scaling, in float32 as Hugging Face's RoPE utilities compute it
  (so imported Llama 3.1 weights see the same angles)."""
  h, factor = cfg.head_dim, np.float32(cfg.rope_scaling_factor)
  inv_freq = (1.0 / (cfg.rope_theta ** (np.arange(0, h, 2, dtype=np.float32) / h))).astype(
    np.float32
  )
  if cfg.rope_scaling == "linear":
    inv_freq = inv_freq / factor
  elif cfg.rope_scaling == "llama3":
    low, high = cfg.rope_low_freq_factor, cfg.rope_high_freq_factor
    original = cfg.rope_original_max_len
    wavelen = 2 * math.pi / inv_freq
    long_scaled = np.where(wavelen > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * long_scaled / factor + smooth * long_scaled
    medium = (wavelen >= original / high) & (wavelen <= original / low)
    inv_freq = np.where(medium, smoothed, long_scaled)
  return tuple(float(f) for f in inv_freq.astype(np.float32))


def rotary_tables(positions: jax.Array, inv_freq: tuple[float, ...]):
  """Returns (sin, cos) tables of shape [*positions.shape, len(inv_freq)] ([T] or [B, T])."""
  angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq, jnp.float32)
  return jnp.sin(angles), jnp.cos(angles)


def apply_rotary(x_BTNH: jax.Array, sin: jax.Array, cos: jax.Array) -> jax.Array:
  """Rotates pairs (first half, second half) of each head's features by position.

  `sin` and `cos` are [T, head_dim // 2] (shared by the batch) or [B, T, head_dim // 2].
  """
  x1, x2 = jnp.split(x_BTNH.astype(jnp.float32), 2, axis=-1)
  sin, cos = sin[..., None, :], cos[..., None, :]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BTNH.dtype)


@struct.dataclass
class KVCache:
  """One layer's keys and values (its K key/value heads) in S preallocated slots.

  Slots [start_B[b], index) of row b hold its tokens; the slots before start_B[b] are left
  padding, which no other token attends to. Each slot also holds its token's segment (its
  document, with document masking; else 0): a token sees only its own segment's slots.
  """

  k_BSNH: jax.Array
  v_BSNH: jax.Array
  segment_BS: jax.Array
  index: jax.Array  # [] the slot the next call writes first
  start_B: jax.Array  # [B] each row's first real slot

  @classmethod
  def empty(
    cls, batch: int, size: int, num_kv_heads: int, head_dim: int, dtype, start_B: jax.Array
  ) -> KVCache:
    zeros = jnp.zeros((batch, size, num_kv_heads, head_dim), dtype)
    return cls(
      zeros,
      zeros,
      jnp.zeros((batch, size), jnp.int32),
      jnp.zeros((), jnp.int32),
      start_B.astype(jnp.int32),
    )

  def positions(self, length: int) -> jax.Array:
    """[B, T] positions of the next `length` tokens within their rows (0 at start_B)."""
    slots_T = self.index + jnp.arange(length)
    return jnp.maximum(slots_T[None, :] - self.start_B[:, None], 0)

  def write(self, k_BTNH: jax.Array, v_BTNH: jax.Array, segment_BT: jax.Array) -> KVCache:
    """The cache with T new keys, values and segments in slots [index, index + T)."""

    def put(buf, new):
      return jax.lax.dynamic_update_slice_in_dim(buf, new.astype(buf.dtype), self.index, axis=1)

    return dataclasses.replace(
      self,
      k_BSNH=put(self.k_BSNH, k_BTNH),
      v_BSNH=put(self.v_BSNH, v_BTNH),
      segment_BS=put(self.segment_BS, segment_BT),
      index=self.index + k_BTNH.shape[1],
    )

  def mask(self, segment_BT: jax.Array) -> jax.Array:
    """[B, T, S]: the next T tokens (segments `segment_BT`) see their row's real slots of their
    own segment up to themselves (this cache must already hold them: call after `write`).

    A padding slot sees only itself, so that no softmax row is empty.
    """
    query_T = self.index - segment_BT.shape[1] + jnp.arange(segment_BT.shape[1])
    key_S = jnp.arange(self.k_BSNH.shape[1])
    causal_TS = key_S[None, :] <= query_T[:, None]
    real_BS = key_S[None, :] >= self.start_B[:, None]
    same_BTS = self.segment_BS[:, None, :] == segment_BT[:, :, None]
    return causal_TS[None] & ((real_BS[:, None, :] & same_BTS) | (key_S == query_T[:, None])[None])


def attention_mask(
  key_mask_BT: jax.Array | None, segment_ids_BT: jax.Array | None
) -> jax.Array | None:
  """[B, 1, T, T] (True: may attend) from real-token flags and segment ids, or None."""
  mask = None if key_mask_BT is None else key_mask_BT[:, None, None, :]
  if segment_ids_BT is not None:
    same_B1TT = segment_ids_BT[:, None, :, None] == segment_ids_BT[:, None, None, :]
    mask = same_B1TT if mask is None else mask & same_B1TT
  return mask


class SelfAttention(nnx.Module):
  """Causal (or bidirectional) multi-head self-attention.

  With as many KV heads as query heads, one fused QKV projection (`w_qkv`); with fewer
  (grouped-query, or multi-query with one), a query projection and a fused KV projection whose
  K heads each serve num_heads / K query heads. Optional RMSNorm of queries and keys over each
  head's features (QK-norm), before rotary positions.
  """

  def __init__(self, cfg: TransformerConfig, ex: ExecutionConfig, *, rngs: nnx.Rngs):
    d, n, k, h = cfg.d_model, cfg.num_heads, cfg.kv_heads, cfg.head_dim
    param_dtype = DTYPES[ex.param_dtype]
    self.num_heads, self.num_kv_heads, self.head_dim = n, k, h
    self.inv_freq = rotary_frequencies(cfg) if cfg.position == "rotary" else None
    self.impl: Literal["xla", "cudnn"] | None = (
      None if ex.attention_impl == "auto" else ex.attention_impl
    )
    self.compute_dtype, self.separate_qkv = DTYPES[ex.compute_dtype], ex.separate_qkv
    std, qkv_bias = INIT_STD * mup.hidden_init_scale(cfg), cfg.use_bias or cfg.qkv_bias
    self.scale = mup.attention_scale(cfg)

    def weight(shape, axes, std):
      return normal_param(rngs, shape, axes, std, param_dtype)

    def zeros(shape, axes, present: bool):
      return const_param(shape, axes, 0.0, param_dtype) if present else None

    if k == n:
      self.w_qkv = weight((d, 3, n, h), ("embed", None, "heads", "head_dim"), std)
      self.b_qkv = zeros((3, n, h), (None, "heads", "head_dim"), qkv_bias)
    else:
      self.w_q = weight((d, n, h), ("embed", "heads", "head_dim"), std)
      self.w_kv = weight((d, 2, k, h), ("embed", None, "kv_heads", "head_dim"), std)
      self.b_q = zeros((n, h), ("heads", "head_dim"), qkv_bias)
      self.b_kv = zeros((2, k, h), (None, "kv_heads", "head_dim"), qkv_bias)
    qk_norm = cfg.qk_norm
    self.q_norm = RMSNorm(h, eps=cfg.layer_norm_eps, param_dtype=param_dtype) if qk_norm else None
    self.k_norm = RMSNorm(h, eps=cfg.layer_norm_eps, param_dtype=param_dtype) if qk_norm else None
    # GPT-2: residual projections scaled by 1/sqrt(2 * layers) so the residual stream stays O(1).
    self.w_out = weight(
      (n, h, d), ("heads", "head_dim", "embed"), std / (2 * cfg.num_layers) ** 0.5
    )
    self.b_out = zeros((d,), ("embed",), cfg.use_bias)

  def __call__(
    self,
    x_BTD: jax.Array,
    *,
    causal: bool = True,
    positions_BT: jax.Array | None = None,
    cache: KVCache | None = None,
    key_mask_BT: jax.Array | None = None,
    segment_ids_BT: jax.Array | None = None,
  ) -> tuple[jax.Array, KVCache | None]:
    """Returns the output [B, T, D] and, given a cache, the cache with this call's keys added.

    Without `positions_BT` the tokens are at positions 0..T-1 (training), or with a cache at
    the cache's next positions. `key_mask_BT` (True: a real token) hides padding keys;
    `segment_ids_BT` (document masking) keeps attention within each segment.
    """
    dt = self.compute_dtype
    if positions_BT is None and cache is not None:
      positions_BT = cache.positions(x_BTD.shape[1])
    q_BTNH, k_BTKH, v_BTKH = self._project_qkv(x_BTD.astype(dt))
    if self.q_norm is not None:
      q_BTNH = self.q_norm(q_BTNH)
    if self.k_norm is not None:
      k_BTKH = self.k_norm(k_BTKH)
    if self.inv_freq is not None:
      positions = jnp.arange(x_BTD.shape[1]) if positions_BT is None else positions_BT
      sin, cos = rotary_tables(positions, self.inv_freq)
      q_BTNH, k_BTKH = apply_rotary(q_BTNH, sin, cos), apply_rotary(k_BTKH, sin, cos)
    if cache is None:
      mask_B1TT = attention_mask(key_mask_BT, segment_ids_BT)
      out_BTNH = self._attend(q_BTNH, k_BTKH, v_BTKH, causal, mask_B1TT)
    else:
      out_BTNH, cache = self._attend_cached(q_BTNH, k_BTKH, v_BTKH, cache, segment_ids_BT)
    y_BTD = jnp.einsum("btnh,nhd->btd", out_BTNH, self.w_out[...].astype(dt))
    if self.b_out is not None:
      y_BTD = add_bias(y_BTD, self.b_out[...])
    return y_BTD, cache

  def _project_qkv(self, x_BTD: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Queries [B, T, N, H], keys and values [B, T, K, H]."""
    if self.num_kv_heads != self.num_heads:
      return self._project_grouped_qkv(x_BTD)
    w_DCNH = self.w_qkv[...].astype(x_BTD.dtype)
    b_CNH = None if self.b_qkv is None else self.b_qkv[...]
    if self.separate_qkv:
      return separate_qkv_projection(x_BTD, w_DCNH, b_CNH)
    qkv_BTCNH = jnp.einsum("btd,dcnh->btcnh", x_BTD, w_DCNH)
    if b_CNH is not None:
      qkv_BTCNH = add_bias_in_float32(qkv_BTCNH, b_CNH)
    return qkv_BTCNH[:, :, 0], qkv_BTCNH[:, :, 1], qkv_BTCNH[:, :, 2]

  def _project_grouped_qkv(self, x_BTD: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Queries [B, T, N, H] and the K key/value heads [B, T, K, H] of grouped-query attention."""
    q_BTNH = jnp.einsum("btd,dnh->btnh", x_BTD, self.w_q[...].astype(x_BTD.dtype))
    kv_BTCKH = jnp.einsum("btd,dckh->btckh", x_BTD, self.w_kv[...].astype(x_BTD.dtype))
    if self.b_q is not None:
      q_BTNH = add_bias_in_float32(q_BTNH, self.b_q[...])
    if self.b_kv is not None:
      kv_BTCKH = add_bias_in_float32(kv_BTCKH, self.b_kv[...])
    return q_BTNH, kv_BTCKH[:, :, 0], kv_BTCKH[:, :, 1]

  def _attend(
    self,
    q_BTNH: jax.Array,
    k_BTKH: jax.Array,
    v_BTKH: jax.Array,
    causal: bool,
    mask_B1TT: jax.Array | None,
  ) -> jax.Array:
    """Attention among this call's tokens [B, T, N, H]."""
    # An arbitrary mask rules out the fused kernels: XLA's attention takes it.
    return jax.nn.dot_product_attention(
      q_BTNH,
      k_BTKH,
      v_BTKH,
      is_causal=causal,
      mask=mask_B1TT,
      scale=self.scale,
      implementation=self.impl if mask_B1TT is None else "xla",
    )

  def _attend_cached(
    self,
    q_BTNH: jax.Array,
    k_BTKH: jax.Array,
    v_BTKH: jax.Array,
    cache: KVCache,
    segment_ids_BT: jax.Array | None,
  ) -> tuple[jax.Array, KVCache]:
    """Writes this call's keys and values into the cache, then attends to every slot written:
    the output [B, T, N, H] and the cache."""
    segment_BT = (
      jnp.zeros(q_BTNH.shape[:2], jnp.int32) if segment_ids_BT is None else segment_ids_BT
    )
    cache = cache.write(k_BTKH, v_BTKH, segment_BT)
    dt = self.compute_dtype
    out_BTNH = jax.nn.dot_product_attention(
      q_BTNH,
      cache.k_BSNH.astype(dt),
      cache.v_BSNH.astype(dt),
      mask=cache.mask(segment_BT)[:, None],
      scale=self.scale,
      implementation="xla",
    )
    return out_BTNH, cache
