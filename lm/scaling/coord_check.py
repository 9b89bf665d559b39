"""Width studies for μP (lm/model/mup.py): one model family at several widths, a few steps of
the real training step, and the coordinate check of Tensor Programs V.

The coordinate check trains each width for a few Adam steps on one fixed batch and records,
after every step, each layer's mean absolute activation. Under μP these sizes stay flat as the
width grows (the updates move every layer by Θ(1) per coordinate); under the standard
parametrization they grow with width, which is what makes a learning rate tuned at one width
unstable or too timid at another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lm.model.config import ExecutionConfig, TransformerConfig
from lm.model.transformer import DecoderLM
from lm.runtime import sharding
from lm.training.step import make_train_step, state_layout


def at_width(cfg: TransformerConfig, width: int) -> TransformerConfig:
  """`cfg` with d_model = `width`: the MLP ratio and the number of heads kept (so head_dim
  grows with the width), and μP's base width and head size left as they are."""
  return dataclasses.replace(cfg, d_model=width, mlp_dim=cfg.mlp_dim * width // cfg.d_model)


def train(
  cfg: TransformerConfig,
  optim_cfg,
  batches: Iterable[dict[str, Any]],
  steps: int,
  *,
  seed: int = 0,
  on_step=None,
) -> tuple[nnx.GraphDef, Any, list[float]]:
  """Trains a fresh `cfg` model on one device for `steps` of `batches` with the real training
  step (lm/training/step.py: optimizer and μP multipliers from `optim_cfg` and `cfg`).

  Returns the graphdef, the final params and the losses; `on_step(model)`, if given, sees the
  model before the first update and after each.
  """
  mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
  layout = state_layout(cfg, ExecutionConfig(), optim_cfg, steps, mesh)
  step_fn = jax.jit(make_train_step(layout.graphdef, layout.tx, layout.schedule, False))
  state = jax.jit(layout.init_fn)(jax.random.key(seed))
  if on_step is not None:
    on_step(nnx.merge(layout.graphdef, state.params))
  losses = []
  for _, batch in zip(range(steps), batches):
    state, metrics = step_fn(state, batch)
    losses.append(float(metrics["loss"]))
    if on_step is not None:
      on_step(nnx.merge(layout.graphdef, state.params))
  return layout.graphdef, state.params, losses


def activation_sizes(model: DecoderLM, tokens_BT: jax.Array) -> dict[str, jax.Array]:
  """Mean |x| of the input embedding, each block's attention and MLP outputs and its output,
  and the output logits, over `tokens_BT` (a pre-LN decoder; no dropout, no documents)."""
  x_BTD = model.embed[...][tokens_BT]
  if model.pos_embed is not None:
    x_BTD = x_BTD + model.pos_embed[: tokens_BT.shape[1]]
  sizes = {"embedding": x_BTD}
  for i, block in enumerate(model.blocks):
    attn_BTD, _ = block.attn(block.norm_attn(x_BTD))
    out_BTD, _ = block(x_BTD, causal=True, rngs=None)
    sizes |= {
      f"block{i}.attn": attn_BTD,
      f"block{i}.mlp": out_BTD - x_BTD - attn_BTD,
      f"block{i}": out_BTD,
    }
    x_BTD = out_BTD
  sizes["logits"] = model(tokens_BT)
  return {name: jnp.abs(x).mean() for name, x in sizes.items()}


def coordinate_check(
  cfg: TransformerConfig,
  optim_cfg,
  widths: Sequence[int],
  *,
  steps: int,
  batch_size: int,
  seq_len: int,
  seed: int = 0,
) -> dict[int, list[dict[str, float]]]:
  """For each width, the activation sizes (`activation_sizes`) at init and after each of
  `steps` updates on one fixed batch of random tokens: {width: [sizes at step 0, 1, ...]}."""
  tokens = jax.random.randint(
    jax.random.key(seed + 1), (batch_size, seq_len + 1), 0, cfg.vocab_size
  )
  measure = nnx.jit(activation_sizes)
  result = {}
  for width in widths:
    sizes: list[dict[str, float]] = []

    def record(model, sizes=sizes):
      sizes.append({k: float(v) for k, v in measure(model, tokens[:, :-1]).items()})

    train(
      at_width(cfg, width),
      optim_cfg,
      [{"tokens": tokens}] * steps,
      steps,
      seed=seed,
      on_step=record,
    )
    result[width] = sizes
  return result
