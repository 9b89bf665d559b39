"""Parameter and FLOP accounting: the one place these numbers come from.

Conventions (named, because they move fitted scaling exponents):
  * `total`: every parameter.
  * `embedding`: token (+ learned position) embedding tables.
  * `non_embedding`: total - embedding (Kaplan et al.); an untied head counts here.
  * `matmul`: parameters used in a matrix product per token: non-embedding weights plus the
    LM head (the tied embedding is reused as the head, so it counts once as a matmul).
Training FLOPs per token: `6 * matmul` (forward 2, backward 4) plus the attention
score/value term `6 * 2 * layers * seq_len * d_model` (causal masking not discounted),
as in the PaLM MFU definition.
"""

from __future__ import annotations

from lm.model.transformer import TransformerConfig


def param_counts(cfg: TransformerConfig) -> dict[str, int]:
  """Parameter counts of a decoder LM by convention (see module docstring)."""
  d, f, v, n_layers = cfg.d_model, cfg.mlp_dim, cfg.vocab_size, cfg.num_layers
  b = 1 if cfg.use_bias else 0
  attn = d * 3 * d + 3 * d * b + d * d + d * b
  mlp = d * f + f * b + f * d + d * b
  norms = 2 * (d + d * b)
  blocks = n_layers * (attn + mlp + norms)
  final_norm = d + d * b
  token_embed = v * d
  pos_embed = cfg.max_seq_len * d if cfg.position == "learned" else 0
  head = 0 if cfg.tie_embeddings else d * v
  embedding = token_embed + pos_embed
  non_embedding = blocks + final_norm + head
  block_matmul = n_layers * (4 * d * d + 2 * d * f)
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


def training_flops_per_token(cfg: TransformerConfig, seq_len: int) -> int:
  """Training FLOPs per token: 6 * matmul params + attention term (the MFU convention)."""
  return 6 * param_counts(cfg)["matmul"] + attention_flops_per_token(cfg, seq_len)
