"""A model's two configs: its architecture (what it is) and its execution (how it runs).

The architecture is what a checkpoint and a Hugging Face export describe; a fine-tuning run
takes it from the pretrained run. The execution (dtypes, attention kernel, rematerialisation,
scan over layers, loss numerics) changes how fast a step runs or in what precision, never
which function it computes; a scaling sweep's run identity leaves it out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
KINDS = ("decoder", "encoder")
NORM_POSITIONS = ("pre", "post")
POSITIONS = ("learned", "rotary")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")
ROPE_SCALINGS = ("none", "linear", "llama3")
ATTENTION_IMPLS = ("xla", "cudnn", "auto")
# What the backward pass may keep from the forward of each block ('none': everything).
REMAT_POLICIES = {
  "none": None,
  "full": jax.checkpoint_policies.nothing_saveable,
  "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}
REMAT = tuple(REMAT_POLICIES)
PARAMETRIZATIONS = ("standard", "mup")  # lm/model/mup.py


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
  kind: Literal["decoder", "encoder"] = "decoder"
  norm_position: Literal["pre", "post"] = "pre"
  activation: str = "gelu_tanh"  # 'gelu_tanh' (GPT-2 'gelu_new') or 'gelu' (exact, BERT)
  type_vocab_size: int = 0  # segment embeddings (BERT's token types); 0: none
  num_classes: int = 0  # a sequence-classification head; 0: none
  norm: Literal["layernorm", "rmsnorm"] = "layernorm"
  mlp: Literal["gelu", "swiglu"] = "gelu"  # swiglu: silu(x W_gate) * (x W_in), then W_out
  num_kv_heads: int = 0  # key/value heads (grouped-query attention); 0: num_heads
  qk_norm: bool = False  # RMSNorm of queries and keys over each head's features
  rope_theta: float = 10000.0  # rotary positions' base wavelength
  # Context extension of rotary positions: 'linear' divides every frequency by the factor;
  # 'llama3' (Llama 3.1) divides those whose wavelength exceeds rope_original_max_len /
  # rope_low_freq_factor, keeps those under rope_original_max_len / rope_high_freq_factor,
  # and interpolates between.
  rope_scaling: Literal["none", "linear", "llama3"] = "none"
  rope_scaling_factor: float = 1.0
  rope_low_freq_factor: float = 1.0
  rope_high_freq_factor: float = 4.0
  rope_original_max_len: int = 8192
  qkv_bias: bool = False  # query/key/value biases even without use_bias (Qwen2)
  parametrization: Literal["standard", "mup"] = "standard"  # 'mup': lm/model/mup.py
  base_width: int = 0  # μP: the d_model its learning rate was tuned at
  base_head_dim: int = 0  # μP: the head_dim its learning rate was tuned at
  mup_output_multiplier: float = 1.0  # μP: the logits' multiplier, tuned at base_width

  @property
  def head_dim(self) -> int:
    return self.d_model // self.num_heads

  @property
  def kv_heads(self) -> int:
    return self.num_kv_heads or self.num_heads


@dataclasses.dataclass(frozen=True)
class ExecutionConfig:
  """How a model's steps run: the same function in another precision or at another speed."""

  param_dtype: str = "float32"
  compute_dtype: str = "float32"
  logits_dtype: str = "float32"
  attention_impl: Literal["xla", "cudnn", "auto"] = "xla"  # cudnn: fused, GPU; auto: JAX's choice
  remat: Literal["none", "full", "dots"] = "none"  # what the backward recomputes
  scan_layers: bool = False  # training and eval run the blocks as one lax.scan body
  separate_qkv: bool = False  # three q/k/v GEMMs instead of one fused QKV GEMM
  fused_cross_entropy: bool = True  # the memory-lean loss backward (numerics.cross_entropy)
  one_pass_logsumexp: bool = False  # on GPUs, the loss's normaliser in one pass over logits


def fields_of(cls: type) -> tuple[str, ...]:
  """The field names of a config dataclass."""
  return tuple(f.name for f in dataclasses.fields(cls))


def architecture(model_section: Mapping[str, Any], vocab_size: int) -> TransformerConfig:
  """The architecture from a config's `model` section, with the tokenizer's vocabulary padded
  up to a multiple of `model_section['vocab_multiple']`."""
  kwargs = {k: model_section[k] for k in fields_of(TransformerConfig) if k != "vocab_size"}
  multiple = model_section["vocab_multiple"]
  return TransformerConfig(vocab_size=-(-vocab_size // multiple) * multiple, **kwargs)


def execution(section: Mapping[str, Any]) -> ExecutionConfig:
  """The execution config from a config's `execution` section."""
  return ExecutionConfig(**{k: section[k] for k in fields_of(ExecutionConfig)})
