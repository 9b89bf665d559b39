"""Optax optimizer and learning-rate schedules from config."""

from __future__ import annotations

from typing import Any

import jax
import optax

SCHEDULES = ("constant", "linear", "cosine", "wsd")


def make_schedule(cfg, total_steps: int) -> optax.Schedule:
  """Warmup then `cfg.schedule`: constant, linear or cosine decay, or warmup-stable-decay."""
  peak, warmup = cfg.learning_rate, cfg.warmup_steps
  final = peak * cfg.final_lr_ratio
  decay_steps = max(total_steps - warmup, 1)
  if cfg.schedule == "constant":
    after = optax.constant_schedule(peak)
  elif cfg.schedule == "linear":
    after = optax.linear_schedule(peak, final, decay_steps)
  elif cfg.schedule == "cosine":
    after = optax.cosine_decay_schedule(peak, decay_steps, alpha=cfg.final_lr_ratio)
  elif cfg.schedule == "wsd":
    cooldown = max(int(round(total_steps * cfg.wsd_decay_fraction)), 1)
    after = optax.join_schedules(
        [optax.constant_schedule(peak), optax.linear_schedule(peak, final, cooldown)],
        [max(decay_steps - cooldown, 0)])
  else:
    raise ValueError(f"config.optim.schedule={cfg.schedule!r}; valid: {', '.join(SCHEDULES)}")
  if warmup == 0:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def decay_mask(params: Any) -> Any:
  """Weight decay on matrices only: no decay for biases, norms' scales (all 1-D params)."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """AdamW with global-norm clipping, decoupled weight decay on matrices, and a schedule."""
  schedule = make_schedule(cfg, total_steps)
  chain = []
  if cfg.grad_clip_norm > 0:
    chain.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
  chain.append(optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                           weight_decay=cfg.weight_decay, mask=decay_mask))
  return optax.chain(*chain), schedule
