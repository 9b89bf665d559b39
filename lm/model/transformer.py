"""Transformer blocks and the decoder-only language model (GPT)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from lm.model.attention import AttentionImpl, KVCache, SelfAttention
from lm.model.layers import MLP, LayerNorm, normal_param

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
# What the backward pass may keep from the forward of each block ('none': everything).
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Architecture of a Transformer language model. `vocab_size` is the padded size."""

  vocab_size: int
  num_layers: int
  num_heads: int
  d_model: int
  mlp_dim: int
  max_seq_len: int
  position: Literal["learned", "rotary"] = "learned"
  tie_embeddings: bool = True
  use_bias: bool = True
  dropout: float = 0.0
  layer_norm_eps: float = 1e-5
  param_dtype: str = "float32"
  compute_dtype: str = "float32"
  attention_impl: str = "xla"
  remat: str = "none"
  logits_dtype: str = "float32"

  @property
  def head_dim(self) -> int:
    return self.d_model // self.num_heads


def _impl(name: str) -> AttentionImpl:
  return None if name == "auto" else name  # type: ignore[return-value]


class Block(nnx.Module):
  """Pre-LayerNorm Transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    pdt, cdt = DTYPES[cfg.param_dtype], DTYPES[cfg.compute_dtype]
    self.norm_attn = LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, use_bias=cfg.use_bias,
                               param_dtype=pdt)
    self.attn = SelfAttention(cfg.d_model, cfg.num_heads, num_layers=cfg.num_layers,
                              use_bias=cfg.use_bias, rotary=cfg.position == "rotary",
                              impl=_impl(cfg.attention_impl), param_dtype=pdt,
                              compute_dtype=cdt, rngs=rngs)
    self.norm_mlp = LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, use_bias=cfg.use_bias,
                              param_dtype=pdt)
    self.mlp = MLP(cfg.d_model, cfg.mlp_dim, num_layers=cfg.num_layers, use_bias=cfg.use_bias,
                   param_dtype=pdt, compute_dtype=cdt, rngs=rngs)
    self.dropout = nnx.Dropout(cfg.dropout)

  def __call__(self, x_BTD: jax.Array, *, causal: bool, rngs: nnx.Rngs | None,
               positions_BT: jax.Array | None = None, cache: KVCache | None = None
               ) -> tuple[jax.Array, KVCache | None]:
    train = rngs is not None
    attn_BTD, cache = self.attn(self.norm_attn(x_BTD), causal=causal, positions_BT=positions_BT,
                                cache=cache)
    x_BTD = x_BTD + self.dropout(attn_BTD, deterministic=not train, rngs=rngs)
    x_BTD = x_BTD + self.dropout(self.mlp(self.norm_mlp(x_BTD)), deterministic=not train,
                                 rngs=rngs)
    return x_BTD, cache


class DecoderLM(nnx.Module):
  """GPT: token (+ learned position) embedding, causal blocks, final norm, LM head."""

  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    pdt = DTYPES[cfg.param_dtype]
    self.embed = normal_param(rngs, (cfg.vocab_size, cfg.d_model), ("vocab", "embed"), 0.02, pdt)
    self.pos_embed = (normal_param(rngs, (cfg.max_seq_len, cfg.d_model), (None, "embed"), 0.01, pdt)
                      if cfg.position == "learned" else None)
    self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
    self.norm_out = LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, use_bias=cfg.use_bias,
                              param_dtype=pdt)
    self.head = (None if cfg.tie_embeddings else
                 normal_param(rngs, (cfg.d_model, cfg.vocab_size), ("embed", "vocab"), 0.02, pdt))
    self.dropout = nnx.Dropout(cfg.dropout)

  def init_cache(self, batch: int, size: int, start_B: jax.Array | None = None
                 ) -> tuple[KVCache, ...]:
    """An empty cache of `size` slots per layer; row b's tokens start at slot start_B[b]."""
    if size > self.cfg.max_seq_len:
      raise ValueError(f"a cache of {size} tokens (prompt + new tokens) exceeds the model's "
                       f"max_seq_len={self.cfg.max_seq_len}")
    start_B = jnp.zeros((batch,), jnp.int32) if start_B is None else start_B
    return tuple(KVCache.empty(batch, size, self.cfg.num_heads, self.cfg.head_dim,
                               DTYPES[self.cfg.compute_dtype], start_B)
                 for _ in range(self.cfg.num_layers))

  def __call__(self, tokens_BT: jax.Array, *, positions_BT: jax.Array | None = None,
               cache: tuple[KVCache, ...] | None = None, rngs: nnx.Rngs | None = None):
    """Returns logits [B, T, V] in `logits_dtype`, or with a cache (logits, the cache with T
    tokens added).

    Positions default to 0..T-1, or with a cache to each row's next positions. Dropout is
    active iff `rngs` is given.
    """
    cdt = DTYPES[self.cfg.compute_dtype]
    if positions_BT is None and cache is not None:
      positions_BT = cache[0].positions(tokens_BT.shape[1])
    x_BTD = self.embed[...].astype(cdt)[tokens_BT]
    if self.pos_embed is not None:
      pos = (self.pos_embed[: tokens_BT.shape[1]] if positions_BT is None else
             self.pos_embed[...][positions_BT])
      x_BTD = x_BTD + pos.astype(cdt)
    x_BTD = self.dropout(x_BTD, deterministic=rngs is None, rngs=rngs)
    new_cache = []
    for i, block in enumerate(self.blocks):
      layer_cache = None if cache is None else cache[i]
      x_BTD, layer_cache = self._apply_block(block, x_BTD, rngs, positions_BT, layer_cache)
      new_cache.append(layer_cache)
    x_BTD = self.norm_out(x_BTD)
    head_DV = self.embed[...].T if self.head is None else self.head[...]
    logits_BTV = jnp.einsum("btd,dv->btv", x_BTD, head_DV.astype(cdt),
                            preferred_element_type=DTYPES[self.cfg.logits_dtype])
    return logits_BTV if cache is None else (logits_BTV, tuple(new_cache))

  def _apply_block(self, block: Block, x_BTD, rngs, positions_BT, cache):
    if self.cfg.remat == "none" or cache is not None:
      return block(x_BTD, causal=True, rngs=rngs, positions_BT=positions_BT, cache=cache)
    policy = REMAT_POLICIES[self.cfg.remat]
    run = nnx.remat(lambda b, x, r, p: b(x, causal=True, rngs=r, positions_BT=p)[0],
                    policy=policy)
    return run(block, x_BTD, rngs, positions_BT), None
