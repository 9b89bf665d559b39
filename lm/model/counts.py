"""Parameter and FLOP accounting: the one place these numbers come from.

Parameter conventions (named, because they move fitted scaling exponents; Porian et al. 2024):
  * `total`: every parameter.
  * `embedding`: token (+ learned position) embedding tables.
  * `non_embedding`: total - embedding (Kaplan et al.); an untied head counts here.
  * `head`: the LM head's matrix (d_model x vocab), whether tied or not.
  * `matmul`: parameters used in a matrix product per token: block weights plus the LM head
    (the tied embedding is reused as the head, so it counts once as a matmul).

Training FLOPs per token, by convention (`FLOP_CONVENTIONS`):
  * `6N`: 6 * non_embedding (Kaplan et al. C = 6ND).
  * `6N+attn`: 6 * non_embedding + the attention score/value term.
  * `exact`: every matmul: 6 * matmul + the attention term `6 * 2 * layers * seq_len * d_model`
    (causal masking not discounted), as in the PaLM MFU definition; MFU uses this one.
"""

from __future__ import annotations

from lm.model.config import TransformerConfig

FLOP_CONVENTIONS = ("6N", "6N+attn", "exact")


def param_counts(cfg: TransformerConfig) -> dict[str, int]:
  """Parameter counts of a decoder or encoder by convention (see module docstring).

  Segment embeddings count as embedding; BERT's MLM head transform (dense + LayerNorm + output
  bias) and a classifier count as non-embedding. The embedding LayerNorm of a post-LN model
  takes the place of the final one.
  """
  d, f, v, n_layers = cfg.d_model, cfg.mlp_dim, cfg.vocab_size, cfg.num_layers
  b = 1 if cfg.use_bias else 0
  qkv_b = 1 if cfg.use_bias or cfg.qkv_bias else 0
  kv = 2 * cfg.kv_heads * cfg.head_dim  # the key and value projections' outputs
  attn = d * (d + kv) + (d + kv) * qkv_b + d * d + d * b + (2 * cfg.head_dim if cfg.qk_norm else 0)
  mlp_matrices = 3 if cfg.mlp == "swiglu" else 2
  mlp = mlp_matrices * d * f + (mlp_matrices - 1) * f * b + d * b
  norm = d + (d * b if cfg.norm == "layernorm" else 0)
  blocks = n_layers * (attn + mlp + 2 * norm)
  final_norm = norm
  token_embed = v * d
  pos_embed = cfg.max_seq_len * d if cfg.position == "learned" else 0
  segment_embed = cfg.type_vocab_size * d
  head = 0 if cfg.tie_embeddings or cfg.kind == "encoder" else d * v
  mlm_head = d * d + d + 2 * d + v if cfg.kind == "encoder" else 0
  classifier = d * d + d + d * cfg.num_classes + cfg.num_classes if cfg.num_classes else 0
  embedding = token_embed + pos_embed + segment_embed
  non_embedding = blocks + final_norm + head + mlm_head + classifier
  block_matmul = n_layers * (2 * d * d + d * kv + mlp_matrices * d * f)
  return {
    "total": embedding + non_embedding,
    "embedding": embedding,
    "non_embedding": non_embedding,
    "head": d * v,
    "matmul": block_matmul + d * v,
  }


def attention_flops_per_token(cfg: TransformerConfig, seq_len: int) -> int:
  """Training FLOPs per token of QK^T and AV: 3 passes * 2 matmuls * 2 * layers * T * d."""
  return 12 * cfg.num_layers * seq_len * cfg.d_model


def training_flops_per_token(
  cfg: TransformerConfig, seq_len: int, convention: str = "exact"
) -> int:
  """Training FLOPs per token under a named convention (see module docstring)."""
  counts = param_counts(cfg)
  if convention == "6N":
    return 6 * counts["non_embedding"]
  if convention == "6N+attn":
    return 6 * counts["non_embedding"] + attention_flops_per_token(cfg, seq_len)
  if convention == "exact":
    return 6 * counts["matmul"] + attention_flops_per_token(cfg, seq_len)
  raise ValueError(f"FLOP convention {convention!r}; valid: {', '.join(FLOP_CONVENTIONS)}")
