"""Optax optimizers (AdamW, Muon, Adafactor, Lion) and learning-rate schedules from config."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from lm.model import mup

SCHEDULES = ("constant", "linear", "cosine", "wsd", "wsd_sqrt")
OPTIMIZERS = ("adamw", "muon", "adafactor", "lion")
# AdamW's peak learning rate: config.optim.learning_rate's default (experiments/configs/base.py).
ADAMW_LEARNING_RATE = 1e-3
# What Muon trains well at: its hidden matrices' and its AdamW part's (benchmarks/README.md).
MUON_SETTINGS = "--config.optim.learning_rate=0.02 --config.optim.adam_learning_rate=0.001"


def cooldown_steps(total_steps: int, fraction: float) -> int:
  """The steps a warmup-stable-decay schedule of `total_steps` spends decaying: its last
  `fraction` (at least one)."""
  return max(round(total_steps * fraction), 1)


def one_minus_sqrt_schedule(
  init_value: float, end_value: float, transition_steps: int
) -> optax.Schedule:
  """From `init_value` to `end_value` as 1 - sqrt(t / transition_steps) (Hägele et al. 2024)."""

  def schedule(count):
    frac = jnp.clip(count / transition_steps, 0.0, 1.0)
    return end_value + (init_value - end_value) * (1.0 - jnp.sqrt(frac))

  return schedule


def learning_rate_warning(cfg) -> str | None:
  """One line naming the fields to set where `cfg.name` would run at a learning rate of another
  optimizer's scale (None where it does not): Muon's orthogonalised hidden updates at AdamW's
  rate, its AdamW part at Muon's, or Lion's sign updates at AdamW's. AdamW trains at the
  default, which is also Adafactor's scale (an absolute step normalised per coordinate as Adam's;
  not measured)."""
  rate = cfg.learning_rate
  if cfg.name == "muon" and rate <= ADAMW_LEARNING_RATE:
    return (
      f"config.optim.name='muon' runs its hidden matrices at config.optim.learning_rate={rate}, "
      f"AdamW's scale, and trains worse than AdamW there (llama_style, 300 steps: eval loss "
      f"2.374 against AdamW's 2.107, and 1.961 with {MUON_SETTINGS}); set {MUON_SETTINGS}"
    )
  if cfg.name == "muon" and cfg.adam_learning_rate == 0:
    return (
      "config.optim.adam_learning_rate=0 runs Muon's AdamW part (embeddings, head, norms, "
      f"biases) at the hidden matrices' config.optim.learning_rate={rate}; set "
      "--config.optim.adam_learning_rate=0.001 (AdamW's scale)"
    )
  if cfg.name == "lion" and rate >= ADAMW_LEARNING_RATE:
    return (
      f"config.optim.name='lion' at config.optim.learning_rate={rate}, AdamW's scale: Lion's "
      "sign updates want a rate 3-10x smaller and a weight decay 3-10x larger (Chen et al. "
      "2023); set e.g. --config.optim.learning_rate=1e-4 --config.optim.weight_decay=1.0"
    )
  return None


def make_schedule(cfg, total_steps: int) -> optax.Schedule:
  """Warmup then `cfg.schedule`: constant, linear or cosine decay, or warmup-stable-decay
  ('wsd': a linear cooldown; 'wsd_sqrt': a 1-sqrt one)."""
  peak, warmup = cfg.learning_rate, cfg.warmup_steps
  final = peak * cfg.final_lr_ratio
  decay_steps = max(total_steps - warmup, 1)
  if cfg.schedule == "constant":
    after = optax.constant_schedule(peak)
  elif cfg.schedule == "linear":
    after = optax.linear_schedule(peak, final, decay_steps)
  elif cfg.schedule == "cosine":
    after = optax.cosine_decay_schedule(peak, decay_steps, alpha=cfg.final_lr_ratio)
  elif cfg.schedule in ("wsd", "wsd_sqrt"):
    cooldown = cooldown_steps(total_steps, cfg.wsd_decay_fraction)
    shape = optax.linear_schedule if cfg.schedule == "wsd" else one_minus_sqrt_schedule
    after = optax.join_schedules(
      [optax.constant_schedule(peak), shape(peak, final, cooldown)],
      [max(decay_steps - cooldown, 0)],
    )
  else:
    raise ValueError(f"config.optim.schedule={cfg.schedule!r}; valid: {', '.join(SCHEDULES)}")
  if warmup == 0:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def decay_mask(params: Any) -> Any:
  """Weight decay on matrices only: no decay for biases, norms' scales (all 1-D params)."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


EMBEDDINGS = ("embed", "pos_embed", "segment_embed", "norm_embed")


def frozen_labels(params: Any, freeze_embeddings: bool, freeze_layers: int) -> Any:
  """'frozen' for the embeddings (if asked) and the lowest `freeze_layers` blocks, else 'train'.

  The tied embedding is also the LM head, so freezing it freezes the head too.
  """

  def label(path, _):
    top = path[0].key
    frozen = (freeze_embeddings and top in EMBEDDINGS) or (
      top == "blocks" and int(path[1].key) < freeze_layers
    )
    return "frozen" if frozen else "train"

  return jax.tree_util.tree_map_with_path(label, params)


def zero_frozen(freeze_embeddings: bool, freeze_layers: int) -> optax.GradientTransformation:
  """Zeroes the updates of frozen parameters (a mask, so the optimizer state keeps the
  params' structure and shardings)."""

  def update_fn(updates, state, params=None):
    del params
    labels = frozen_labels(updates, freeze_embeddings, freeze_layers)
    return jax.tree.map(
      lambda u, label: jnp.zeros_like(u) if label == "frozen" else u, updates, labels
    ), state

  return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


def muon_dimensions(logical_axes: Any) -> Any:
  """Muon's view of each parameter, from its logical axis names: the blocks' hidden matrices
  (an `embed` axis and hidden axes, no `vocab`) as matrices from their input axes to their
  output axes, unnamed axes (q/k/v) being a batch of matrices; None for the rest (embeddings,
  head, norms, biases), which AdamW updates, as Muon's authors prescribe."""

  def dims(names):
    names = tuple(names)
    if mup.role(names) != "hidden":
      return None
    hidden = tuple(i for i, n in enumerate(names) if n in mup.HIDDEN_AXES)
    embed = (names.index("embed"),)
    # An input projection contracts `embed`; an output projection produces it.
    inputs, outputs = (embed, hidden) if names[0] == "embed" else (hidden, embed)
    return optax.contrib.MuonDimensionNumbers(reduction_axis=inputs, output_axis=outputs)

  return jax.tree.map(dims, logical_axes, is_leaf=lambda x: isinstance(x, tuple))


def _optimizer(cfg, schedule: optax.Schedule, logical_axes: Any) -> optax.GradientTransformation:
  if cfg.name == "adamw":
    return optax.adamw(
      schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay, mask=decay_mask
    )
  if cfg.name == "lion":
    return optax.lion(
      schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay, mask=decay_mask
    )
  if cfg.name == "adafactor":
    # An absolute step size, as AdamW's (not scaled by each parameter's norm).
    return optax.adafactor(
      schedule,
      multiply_by_parameter_scale=False,
      weight_decay_rate=cfg.weight_decay or None,
      weight_decay_mask=decay_mask,
    )
  if cfg.name == "muon":
    adam_peak = cfg.adam_learning_rate or cfg.learning_rate

    def adam_schedule(step):
      return schedule(step) * (adam_peak / cfg.learning_rate)

    return optax.contrib.muon(
      schedule,
      eps=cfg.eps,
      weight_decay=cfg.weight_decay,
      weight_decay_mask=decay_mask,
      adam_b1=cfg.b1,
      adam_b2=cfg.b2,
      adam_weight_decay=cfg.weight_decay,
      adam_learning_rate=adam_schedule,
      muon_weight_dimension_numbers=muon_dimensions(logical_axes),
    )
  raise ValueError(f"config.optim.name={cfg.name!r}; valid: {', '.join(OPTIMIZERS)}")


def scale_updates(factors: Any) -> optax.GradientTransformation:
  """Multiplies each parameter's update by its factor in `factors` (a tree of floats shaped
  like the params): per-parameter learning rates after the optimizer has applied its own."""
  return optax.stateless(
    lambda updates, _: jax.tree.map(
      lambda u, f: u if f == 1.0 else u * jnp.asarray(f, u.dtype), updates, factors
    )
  )


def make_optimizer(
  cfg, total_steps: int, logical_axes: Any, lr_multipliers: Any = None
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """`cfg.name` (AdamW, Muon, Adafactor or Lion) with global-norm clipping, decoupled weight
  decay on matrices, and a schedule; frozen parameters (`freeze_embeddings`, `freeze_layers`)
  get zero gradients and updates. `logical_axes`: the params' axis names (for Muon);
  `lr_multipliers`: each parameter's learning-rate factor (μP's, lm/model/mup.py), or None."""
  if lr_multipliers is not None and cfg.name == "muon":
    raise ValueError(
      "config.optim.name='muon' has no μP learning-rate table here (its hidden "
      "updates are orthogonalised, not Adam's); use adamw, lion or adafactor"
    )
  schedule = make_schedule(cfg, total_steps)
  freeze = (
    [zero_frozen(cfg.freeze_embeddings, cfg.freeze_layers)]
    if cfg.freeze_embeddings or cfg.freeze_layers
    else []
  )
  chain = list(freeze)  # before clipping, so frozen gradients do not count in the norm
  if cfg.grad_clip_norm > 0:
    chain.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
  chain.append(_optimizer(cfg, schedule, logical_axes))
  # The whole step, decoupled weight decay included, scales as the learning rate would.
  if lr_multipliers is not None:
    chain.append(scale_updates(lr_multipliers))
  return optax.chain(*chain, *freeze), schedule
