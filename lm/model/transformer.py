"""Transformer blocks, the shared trunk, the decoder-only language model (GPT) and the
bidirectional masked-LM encoder (BERT).

Both run the same trunk and blocks; `norm_position` picks pre-LayerNorm (GPT-2) or
post-LayerNorm (BERT) blocks. Every module takes the architecture (`TransformerConfig`) and
how to run it (`ExecutionConfig`: dtypes, attention kernel, remat, scan over layers).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lm.model import mup
from lm.model.attention import KVCache, SelfAttention
from lm.model.config import DTYPES, KINDS, REMAT_POLICIES, ExecutionConfig, TransformerConfig
from lm.model.heads import ClassifierHead, MLMHead
from lm.model.layers import INIT_STD, MLP, POSITION_INIT_STD, make_norm, normal_param


class Block(nnx.Module):
  """Transformer block. Pre-LN: x + attn(norm(x)), then x + mlp(norm(x)).

  Post-LN (BERT): norm(x + attn(x)), then norm(x + mlp(x)).
  """

  def __init__(self, cfg: TransformerConfig, ex: ExecutionConfig, *, rngs: nnx.Rngs):
    param_dtype = DTYPES[ex.param_dtype]
    self.norm_attn = make_norm(cfg, param_dtype)
    self.attn = SelfAttention(cfg, ex, rngs=rngs)
    self.norm_mlp = make_norm(cfg, param_dtype)
    self.mlp = MLP(cfg, ex, rngs=rngs)
    self.dropout = nnx.Dropout(cfg.dropout)
    self.pre_norm = cfg.norm_position == "pre"

  def __call__(
    self,
    x_BTD: jax.Array,
    *,
    causal: bool,
    rngs: nnx.Rngs | None,
    positions_BT: jax.Array | None = None,
    cache: KVCache | None = None,
    key_mask_BT: jax.Array | None = None,
    segment_ids_BT: jax.Array | None = None,
  ) -> tuple[jax.Array, KVCache | None]:
    def drop(y):
      return self.dropout(y, deterministic=rngs is None, rngs=rngs)

    def attn(x):
      return self.attn(
        x,
        causal=causal,
        positions_BT=positions_BT,
        cache=cache,
        key_mask_BT=key_mask_BT,
        segment_ids_BT=segment_ids_BT,
      )

    if self.pre_norm:
      attn_BTD, cache = attn(self.norm_attn(x_BTD))
      x_BTD = x_BTD + drop(attn_BTD)
      return x_BTD + drop(self.mlp(self.norm_mlp(x_BTD))), cache
    attn_BTD, cache = attn(x_BTD)
    x_BTD = self.norm_attn(x_BTD + drop(attn_BTD))
    return self.norm_mlp(x_BTD + drop(self.mlp(x_BTD))), cache


class Trunk(nnx.Module):
  """Embeddings (token, learned position, segment), the blocks, and the final or embedding
  LayerNorm (pre-LN: after the blocks; post-LN: on the embeddings), plus an optional
  sequence-classification head. The decoder and the encoder are trunks with an LM head.
  """

  def __init__(self, cfg: TransformerConfig, ex: ExecutionConfig, *, rngs: nnx.Rngs):
    self.cfg, self.ex = cfg, ex
    param_dtype = DTYPES[ex.param_dtype]

    def table(rows: int, row_axis: str | None, std: float) -> nnx.Param:
      return normal_param(rngs, (rows, cfg.d_model), (row_axis, "embed"), std, param_dtype)

    self.embed = table(cfg.vocab_size, "vocab", INIT_STD)
    learned = cfg.position == "learned"
    self.pos_embed = table(cfg.max_seq_len, None, POSITION_INIT_STD) if learned else None
    self.segment_embed = table(cfg.type_vocab_size, None, INIT_STD) if cfg.type_vocab_size else None
    self.norm_embed = make_norm(cfg, param_dtype) if cfg.norm_position == "post" else None
    self.blocks = nnx.List([Block(cfg, ex, rngs=rngs) for _ in range(cfg.num_layers)])
    self.norm_out = make_norm(cfg, param_dtype) if cfg.norm_position == "pre" else None
    self.dropout = nnx.Dropout(cfg.dropout)
    self.classifier = (
      ClassifierHead(
        cfg.d_model,
        cfg.num_classes,
        pool="last" if cfg.kind == "decoder" else "first",
        dropout=cfg.dropout,
        param_dtype=param_dtype,
        rngs=rngs,
      )
      if cfg.num_classes
      else None
    )

  def final_hidden_states(
    self,
    tokens_BT: jax.Array,
    *,
    cache: tuple[KVCache, ...] | None = None,
    positions_BT: jax.Array | None = None,
    segment_ids_BT: jax.Array | None = None,
    key_mask_BT: jax.Array | None = None,
    token_types_BT: jax.Array | None = None,
    rngs: nnx.Rngs | None = None,
  ) -> tuple[jax.Array, tuple[KVCache, ...] | None]:
    """The final hidden states [B, T, D] (and the cache with T tokens added, given one).

    `token_types_BT`: BERT's segment embeddings; `segment_ids_BT`: documents (attention stays
    within each), with `positions_BT` that restart at each.
    """
    if positions_BT is None and cache is not None:
      positions_BT = cache[0].positions(tokens_BT.shape[1])
    x_BTD = self._embed(tokens_BT, positions_BT, token_types_BT, rngs)
    causal = self.cfg.kind == "decoder"
    if self.ex.scan_layers and cache is None:
      x_BTD = self._scan_blocks(x_BTD, causal, rngs, positions_BT, key_mask_BT, segment_ids_BT)
    else:
      x_BTD, cache = self._run_blocks(
        x_BTD, causal, rngs, positions_BT, cache, key_mask_BT, segment_ids_BT
      )
    if self.norm_out is not None:
      x_BTD = self.norm_out(x_BTD)
    return x_BTD, cache

  def _embed(
    self,
    tokens_BT: jax.Array,
    positions_BT: jax.Array | None,
    token_types_BT: jax.Array | None,
    rngs: nnx.Rngs | None,
  ) -> jax.Array:
    """The blocks' input [B, T, D]: token (+ position, + segment) embeddings, in the compute
    dtype, normed (post-LN) and dropped out."""
    # Looked up and summed in the parameters' dtype, then cast: the tables' gradients are
    # scatter-adds over repeated ids, which in bfloat16 stop growing after a few hundred terms.
    x_BTD = self.embed[...][tokens_BT]
    if self.pos_embed is not None:
      x_BTD = x_BTD + (
        self.pos_embed[: tokens_BT.shape[1]]
        if positions_BT is None
        else self.pos_embed[...][positions_BT]
      )
    if self.segment_embed is not None:
      token_types_BT = jnp.zeros_like(tokens_BT) if token_types_BT is None else token_types_BT
      x_BTD = x_BTD + self.segment_embed[...][token_types_BT]
    x_BTD = x_BTD.astype(DTYPES[self.ex.compute_dtype])
    if self.norm_embed is not None:
      x_BTD = self.norm_embed(x_BTD)
    return self.dropout(x_BTD, deterministic=rngs is None, rngs=rngs)

  def _run_blocks(
    self, x_BTD, causal, rngs, positions_BT, cache, key_mask_BT, segment_ids_BT
  ) -> tuple[jax.Array, tuple[KVCache, ...] | None]:
    """The blocks one after another (and each layer's cache with this call's tokens added)."""
    new_cache = []
    for i, block in enumerate(self.blocks):
      layer_cache = None if cache is None else cache[i]
      x_BTD, layer_cache = self._apply_block(
        block, x_BTD, causal, rngs, positions_BT, layer_cache, key_mask_BT, segment_ids_BT
      )
      new_cache.append(layer_cache)
    return x_BTD, (None if cache is None else tuple(new_cache))

  def _apply_block(
    self, block: Block, x_BTD, causal, rngs, positions_BT, cache, key_mask_BT, segment_ids_BT
  ):
    if self.ex.remat == "none" or cache is not None:
      masks = {"key_mask_BT": key_mask_BT, "segment_ids_BT": segment_ids_BT}
      return block(x_BTD, causal=causal, rngs=rngs, positions_BT=positions_BT, cache=cache, **masks)
    policy = REMAT_POLICIES[self.ex.remat]
    run = nnx.remat(
      lambda b, x, r, p, m, s: b(
        x, causal=causal, rngs=r, positions_BT=p, key_mask_BT=m, segment_ids_BT=s
      )[0],
      policy=policy,
    )
    return run(block, x_BTD, rngs, positions_BT, key_mask_BT, segment_ids_BT), None

  def _scan_blocks(self, x_BTD, causal, rngs, positions_BT, key_mask_BT, segment_ids_BT):
    """The blocks as one `lax.scan` body: the compiled program holds one block, not num_layers.

    Parameters stay per layer (checkpoints, conversion and freezing see one layout); they are
    stacked here, at the cost of one copy of the blocks' parameters and of their gradients per
    step. Layer i's dropout key is fold_in(one key of `rngs`, i).
    """
    graphdef, _ = nnx.split(self.blocks[0])
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *(nnx.state(b) for b in self.blocks))
    key = None if rngs is None else rngs.dropout()

    def layer(x_BTD, state_and_index):
      state, i = state_and_index
      layer_rngs = None if key is None else nnx.Rngs(dropout=jax.random.fold_in(key, i))
      return nnx.merge(graphdef, state)(
        x_BTD,
        causal=causal,
        rngs=layer_rngs,
        positions_BT=positions_BT,
        key_mask_BT=key_mask_BT,
        segment_ids_BT=segment_ids_BT,
      )[0]

    if self.ex.remat != "none":
      layer = jax.checkpoint(layer, policy=REMAT_POLICIES[self.ex.remat], prevent_cse=False)
    x_BTD, _ = jax.lax.scan(
      lambda x, xs: (layer(x, xs), None), x_BTD, (stacked, jnp.arange(self.cfg.num_layers))
    )
    return x_BTD

  def classify(
    self, tokens_BT: jax.Array, key_mask_BT: jax.Array, *, rngs: nnx.Rngs | None = None
  ) -> jax.Array:
    """Class logits [B, C] (float32) of right-padded sequences (`key_mask_BT`: real tokens)."""
    if self.classifier is None:
      raise ValueError("classify needs a classification head (config.model.num_classes > 0)")
    x_BTD, _ = self.final_hidden_states(tokens_BT, key_mask_BT=key_mask_BT, rngs=rngs)
    return self.classifier(x_BTD, key_mask_BT, rngs=rngs)


class DecoderLM(Trunk):
  """GPT: token (+ learned position) embedding, causal blocks, final norm, LM head."""

  def __init__(
    self, cfg: TransformerConfig, ex: ExecutionConfig = ExecutionConfig(), *, rngs: nnx.Rngs
  ):
    super().__init__(cfg, ex, rngs=rngs)
    self.head = (
      None
      if cfg.tie_embeddings
      else normal_param(
        rngs, (cfg.d_model, cfg.vocab_size), ("embed", "vocab"), INIT_STD, DTYPES[ex.param_dtype]
      )
    )
    self.output_multiplier = mup.output_multiplier(cfg)

  def init_cache(
    self, batch: int, size: int, start_B: jax.Array | None = None
  ) -> tuple[KVCache, ...]:
    """An empty cache of `size` slots per layer; row b's tokens start at slot start_B[b]."""
    if size > self.cfg.max_seq_len:
      raise ValueError(
        f"a cache of {size} tokens (prompt + new tokens) exceeds the model's "
        f"max_seq_len={self.cfg.max_seq_len}"
      )
    start_B = jnp.zeros((batch,), jnp.int32) if start_B is None else start_B
    return tuple(
      KVCache.empty(
        batch, size, self.cfg.kv_heads, self.cfg.head_dim, DTYPES[self.ex.compute_dtype], start_B
      )
      for _ in range(self.cfg.num_layers)
    )

  def __call__(
    self,
    tokens_BT: jax.Array,
    *,
    positions_BT: jax.Array | None = None,
    segment_ids_BT: jax.Array | None = None,
    cache: tuple[KVCache, ...] | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    """Returns logits [B, T, V] in `logits_dtype`, or with a cache (logits, the cache with T
    tokens added).

    Positions default to 0..T-1, or with a cache to each row's next positions. With
    `segment_ids_BT` (document masking) a token attends only to its own segment. Dropout is
    active iff `rngs` is given.
    """
    x_BTD, new_cache = self.final_hidden_states(
      tokens_BT, positions_BT=positions_BT, segment_ids_BT=segment_ids_BT, cache=cache, rngs=rngs
    )
    if self.output_multiplier != 1.0:  # μP's 1/m, on the narrower side of the head's matmul
      x_BTD = x_BTD * jnp.asarray(self.output_multiplier, x_BTD.dtype)
    head_DV = self.embed[...].T if self.head is None else self.head[...]
    logits_BTV = jnp.einsum(
      "btd,dv->btv",
      x_BTD,
      head_DV.astype(DTYPES[self.ex.compute_dtype]),
      preferred_element_type=DTYPES[self.ex.logits_dtype],
    )
    return logits_BTV if cache is None else (logits_BTV, new_cache)


class EncoderMLM(Trunk):
  """BERT: token + position (+ segment) embeddings, bidirectional padding-masked blocks, and
  the MLM head tied to the token embedding."""

  def __init__(
    self, cfg: TransformerConfig, ex: ExecutionConfig = ExecutionConfig(), *, rngs: nnx.Rngs
  ):
    super().__init__(cfg, ex, rngs=rngs)
    self.mlm_head = MLMHead(
      cfg.d_model,
      cfg.vocab_size,
      activation=cfg.activation,
      eps=cfg.layer_norm_eps,
      param_dtype=DTYPES[ex.param_dtype],
      compute_dtype=DTYPES[ex.compute_dtype],
      rngs=rngs,
    )

  def __call__(
    self,
    tokens_BT: jax.Array,
    *,
    key_mask_BT: jax.Array | None = None,
    token_types_BT: jax.Array | None = None,
    rngs: nnx.Rngs | None = None,
  ) -> jax.Array:
    """MLM logits [B, T, V] in `logits_dtype`; `key_mask_BT` (True: real token) hides padding."""
    x_BTD, _ = self.final_hidden_states(
      tokens_BT, key_mask_BT=key_mask_BT, token_types_BT=token_types_BT, rngs=rngs
    )
    return self.mlm_head(x_BTD, self.embed[...], DTYPES[self.ex.logits_dtype])


def make_model(
  cfg: TransformerConfig, ex: ExecutionConfig = ExecutionConfig(), *, rngs: nnx.Rngs
) -> DecoderLM | EncoderMLM:
  """The model `cfg.kind` names, run as `ex` says."""
  if cfg.kind not in KINDS:
    raise ValueError(f"model kind {cfg.kind!r}; valid: {', '.join(KINDS)}")
  if cfg.parametrization == "mup" and (cfg.kind != "decoder" or cfg.num_classes):
    raise ValueError(
      "parametrization='mup' is implemented for decoder language models only "
      "(kind='decoder', num_classes=0)"
    )
  return (DecoderLM if cfg.kind == "decoder" else EncoderMLM)(cfg, ex, rngs=rngs)
