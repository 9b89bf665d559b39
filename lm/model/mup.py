"""μP, the Maximal Update Parametrization (Yang et al., Tensor Programs V, 2022), for
Adam-family optimizers: the per-parameter rules that the model's initialisers and
`lm/training/optim.py` read, so that a learning rate tuned at `base_width` holds at other widths.

With `parametrization='mup'`, width multiplier m = d_model / base_width and b = base_head_dim,
relative to this codebase's standard parametrization (SP) at the same width, whose init stds
are lm/model/layers.py's INIT_STD (0.02) and POSITION_INIT_STD (0.01):

  parameter (role)                        init std               Adam LR    forward
  token and position embeddings (input)   unchanged (0.02, 0.01) unchanged
  hidden matrices (attention q/k/v/out,   0.02 / sqrt(m)         lr / m
    MLP in/gate/out; residual outputs
    keep their extra 1 / sqrt(2 layers))
  vectors (norm gains, biases)            unchanged (1, 0)       unchanged
  unembedding (tied or untied)            unchanged (0.02)       unchanged  alpha logits / m
  attention logits                                                          q.k sqrt(b) / head_dim

This is Tensor Programs V's Adam table (hidden weights: init variance and Adam LR both
proportional to 1/fan_in; input weights and biases: both constant; output weights: init
variance 1/fan_in^2 and Adam LR 1/fan_in) with the output layer in the equivalent multiplier
form: logits = (h W) / m with W initialised and trained as at base width. The effective output
weights W / m then start with std 0.02 / m and, since Adam's step does not depend on the
gradient's scale, move by lr / m per step: the table's output row. A tied embedding is the
input weights (constant init and LR) and, in this form, the output weights (also constant, the
1/m in the multiplier), so tied and untied are treated alike and the embedding's LR is lr.

alpha (`mup_output_multiplier`) is Tensor Programs V's output multiplier: a hyperparameter of the
base width, tuned there with the learning rate and carried to every width like it. Left at 1, the
base model's logits are SP's, which at small base widths are too weak: on the CPU transfer
benchmark (benchmarks/README.md, μP) alpha = 8 at base width 32 lowers the base's loss by 0.13
and makes every wider model better than the narrower, which alpha = 1 did not.

Width is d_model: mlp_dim and num_heads * head_dim are taken to grow with it (a fixed MLP
ratio), so every hidden matrix's fan-in grows by m. Weight decay is decoupled and scaled with
each parameter's learning rate (lr / m * weight_decay for hidden matrices), as in AdamW.
At d_model == base_width, head_dim == base_head_dim and alpha = 1 every factor is exactly 1: the
model and its optimizer are SP's.
"""

from __future__ import annotations

import math
from typing import Any

import jax

from lm.model.config import TransformerConfig

# The logical axes of a block's hidden matrices, besides `embed` (attention and MLP).
HIDDEN_AXES = ("heads", "kv_heads", "head_dim", "mlp")


def width_multiplier(cfg: TransformerConfig) -> float:
  """m = d_model / base_width under μP; 1 under the standard parametrization."""
  return cfg.d_model / cfg.base_width if cfg.parametrization == "mup" else 1.0


def hidden_init_scale(cfg: TransformerConfig) -> float:
  """The factor on hidden matrices' init std: 1 / sqrt(m) (init variance ∝ 1 / fan-in)."""
  return 1.0 / math.sqrt(width_multiplier(cfg))


def output_multiplier(cfg: TransformerConfig) -> float:
  """The factor on the output logits: alpha / m, alpha the base width's tuned multiplier
  (`mup_output_multiplier`); 1 under the standard parametrization."""
  if cfg.parametrization != "mup":
    return 1.0
  return cfg.mup_output_multiplier / width_multiplier(cfg)


def attention_scale(cfg: TransformerConfig) -> float:
  """The attention logits' scale: 1 / sqrt(head_dim) (SP), or sqrt(b) / head_dim (μP), which is
  the same number when head_dim == b."""
  h = cfg.head_dim
  scale = 1.0 / math.sqrt(h)  # the kernel's own default, bit for bit
  return scale * math.sqrt(cfg.base_head_dim / h) if cfg.parametrization == "mup" else scale


def role(names: tuple[str | None, ...]) -> str:
  """A parameter's role from its logical axis names: 'hidden' (an `embed` axis and a hidden
  axis, no `vocab`), 'embedding' (an input table: vocab or positions by `embed`), 'output'
  (`embed` by `vocab`, an untied head) or 'vector' (norm gains, biases)."""
  names = tuple(names)
  if "embed" not in names or len(names) < 2:
    return "vector"
  if "vocab" in names:
    return "output" if names[-1] == "vocab" else "embedding"
  return "hidden" if any(n in HIDDEN_AXES for n in names) else "embedding"


def lr_multipliers(cfg: TransformerConfig, logical_axes: Any) -> Any:
  """Each parameter's learning-rate factor (1 / m for hidden matrices, else 1), as a tree
  shaped like `logical_axes` (the params' axis-name tuples)."""
  hidden = 1.0 / width_multiplier(cfg)
  return jax.tree.map(
    lambda names: hidden if role(names) == "hidden" else 1.0,
    logical_axes,
    is_leaf=lambda x: isinstance(x, tuple),
  )
