import dataclasses

import pytest

from lm.model import counts
from lm.model.config import TransformerConfig

# 2 layers, width 32, MLP 128, vocabulary 64, 16 positions, tied head, biases.
SMALL = TransformerConfig(
  vocab_size=64, num_layers=2, num_heads=4, d_model=32, mlp_dim=128, max_seq_len=16
)
GPT2 = TransformerConfig(
  vocab_size=50257, num_layers=12, num_heads=12, d_model=768, mlp_dim=3072, max_seq_len=1024
)


def test_small_param_counts_by_hand():
  attn = 32 * 96 + 96 + 32 * 32 + 32  # qkv and output projections with biases
  mlp = 32 * 128 + 128 + 128 * 32 + 32
  norms = 2 * (32 + 32)
  non_embedding = 2 * (attn + mlp + norms) + (32 + 32)
  embedding = 64 * 32 + 16 * 32
  assert counts.param_counts(SMALL) == {
    "total": non_embedding + embedding,
    "embedding": embedding,
    "non_embedding": non_embedding,
    "head": 64 * 32,
    "matmul": 2 * (4 * 32 * 32 + 2 * 32 * 128) + 64 * 32,
  }


def test_qkv_bias_without_other_biases_by_hand():
  # Grouped-query (2 KV heads of 8): 32 query + 2 * 16 key/value biases per layer.
  gqa = dataclasses.replace(SMALL, use_bias=False, qkv_bias=True, num_kv_heads=2)
  no_bias = dataclasses.replace(gqa, qkv_bias=False)
  assert counts.param_counts(gqa)["total"] - counts.param_counts(no_bias)["total"] == 2 * (
    32 + 2 * 16
  )


def test_small_flops_by_convention_by_hand():
  n = counts.param_counts(SMALL)["non_embedding"]
  attn = 12 * 2 * 16 * 32
  assert counts.training_flops_per_token(SMALL, 16, "6N") == 6 * n
  assert counts.training_flops_per_token(SMALL, 16, "6N+attn") == 6 * n + attn
  assert counts.training_flops_per_token(SMALL, 16, "exact") == 6 * 26_624 + attn


def test_gpt2_small_counts():
  n = counts.param_counts(GPT2)
  assert n["total"] == 124_439_808
  assert n["embedding"] == 50257 * 768 + 1024 * 768
  assert n["non_embedding"] == 85_056_000  # Kaplan et al.'s "85M" for GPT-2 small
  assert n["matmul"] == 123_532_032  # 12 * (4 d^2 + 8 d^2) + d * V
  assert counts.training_flops_per_token(GPT2, 1024, "6N") == 510_336_000
  assert counts.training_flops_per_token(GPT2, 1024, "exact") == 854_438_400


def test_unknown_convention_names_the_valid_ones():
  with pytest.raises(ValueError, match="6N\\+attn"):
    counts.training_flops_per_token(SMALL, 16, "kaplan")
