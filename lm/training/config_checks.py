"""Checks a run's config at start, so a bad field fails in one line that names it."""

from __future__ import annotations

import os

from lm.data import sources, token_cache
from lm.data.local_text import DECODE_ERRORS
from lm.model.config import (
  ATTENTION_IMPLS,
  DTYPES,
  KINDS,
  MLPS,
  NORM_POSITIONS,
  NORMS,
  PARAMETRIZATIONS,
  POSITIONS,
  REMAT,
  ROPE_SCALINGS,
)
from lm.model.layers import ACTIVATIONS
from lm.runs import wandb_mirror
from lm.runtime import sharding
from lm.training import optim

_FLOAT32_MAX = 3.4e38  # larger values overflow to inf in the float32 optimizer


class ConfigError(ValueError):
  """A config field is invalid; the message names it and what would be valid."""


def _require(ok: bool, message: str) -> None:
  if not ok:
    raise ConfigError(message)


def check(config, num_devices: int, num_processes: int = 1) -> None:
  """Raises ConfigError for the first invalid field found."""
  m, d, o, t, e = config.model, config.data, config.optim, config.train, config.execution
  _require(
    m.num_heads > 0 and m.d_model % m.num_heads == 0,
    f"config.model.d_model={m.d_model} must be divisible by config.model.num_heads={m.num_heads}",
  )
  _require(
    m.position in POSITIONS, f"config.model.position={m.position!r}; valid: {', '.join(POSITIONS)}"
  )
  _require(
    m.position != "rotary" or (m.d_model // m.num_heads) % 2 == 0,
    f"config.model: rotary positions need an even head size, got {m.d_model // m.num_heads}",
  )
  _require(m.kind in KINDS, f"config.model.kind={m.kind!r}; valid: {', '.join(KINDS)}")
  _require(m.norm in NORMS, f"config.model.norm={m.norm!r}; valid: {', '.join(NORMS)}")
  _require(m.mlp in MLPS, f"config.model.mlp={m.mlp!r}; valid: {', '.join(MLPS)}")
  _require(
    m.num_kv_heads >= 0 and (m.num_kv_heads == 0 or m.num_heads % m.num_kv_heads == 0),
    f"config.model.num_kv_heads={m.num_kv_heads} must divide config.model.num_heads="
    f"{m.num_heads} (0: as many as num_heads)",
  )
  _require(m.rope_theta > 0, f"config.model.rope_theta={m.rope_theta} must be > 0")
  _require(
    m.rope_scaling in ROPE_SCALINGS,
    f"config.model.rope_scaling={m.rope_scaling!r}; valid: {', '.join(ROPE_SCALINGS)}",
  )
  _require(
    m.rope_scaling == "none" or m.position == "rotary",
    f"config.model.rope_scaling={m.rope_scaling!r} needs config.model.position='rotary'",
  )
  _require(
    m.rope_scaling_factor >= 1,
    f"config.model.rope_scaling_factor={m.rope_scaling_factor} must be >= 1",
  )
  _require(
    0 < m.rope_low_freq_factor < m.rope_high_freq_factor,
    f"config.model: rope_low_freq_factor={m.rope_low_freq_factor} and "
    f"rope_high_freq_factor={m.rope_high_freq_factor} must satisfy 0 < low < high",
  )
  _require(
    m.rope_original_max_len >= 1,
    f"config.model.rope_original_max_len={m.rope_original_max_len} must be >= 1",
  )
  _require(
    m.parametrization in PARAMETRIZATIONS,
    f"config.model.parametrization={m.parametrization!r}; valid: {', '.join(PARAMETRIZATIONS)}",
  )
  if m.parametrization == "mup":
    _require(
      m.base_width > 0 and m.base_head_dim > 0,
      f"config.model.parametrization='mup' needs config.model.base_width={m.base_width} "
      f"and base_head_dim={m.base_head_dim} > 0 (the width and head size the learning "
      "rate was tuned at)",
    )
    _require(
      m.kind == "decoder" and not m.num_classes,
      "config.model.parametrization='mup' is implemented for decoder language models "
      "(kind='decoder', num_classes=0)",
    )
    _require(
      o.name != "muon",
      "config.optim.name='muon' with config.model.parametrization='mup': μP's table "
      "here is for Adam-family optimizers (adamw, lion, adafactor)",
    )
  _require(
    m.norm_position in NORM_POSITIONS,
    f"config.model.norm_position={m.norm_position!r}; valid: {', '.join(NORM_POSITIONS)}",
  )
  _require(
    m.activation in ACTIVATIONS,
    f"config.model.activation={m.activation!r}; valid: {', '.join(ACTIVATIONS)}",
  )
  # With init_from the depth is the pretrained model's: checked once it is loaded.
  _require(
    o.freeze_layers >= 0 and (config.init_from or o.freeze_layers <= m.num_layers),
    f"config.optim.freeze_layers={o.freeze_layers} must lie in [0, config.model.num_layers="
    f"{m.num_layers}]",
  )
  _require(m.num_classes >= 0, f"config.model.num_classes={m.num_classes} must be >= 0")
  mlm = config.mlm
  _require(
    0 < mlm.select_prob <= 1
    and min(mlm.mask_frac, mlm.random_frac) >= 0
    and mlm.mask_frac + mlm.random_frac <= 1,
    f"config.mlm: select_prob={mlm.select_prob} must lie in (0, 1] and mask_frac="
    f"{mlm.mask_frac} + random_frac={mlm.random_frac} in [0, 1]",
  )
  for field in ("param_dtype", "compute_dtype", "logits_dtype"):
    _require(
      e[field] in DTYPES, f"config.execution.{field}={e[field]!r}; valid: {', '.join(DTYPES)}"
    )
  _require(
    e.attention_impl in ATTENTION_IMPLS,
    f"config.execution.attention_impl={e.attention_impl!r}; valid: {', '.join(ATTENTION_IMPLS)}",
  )
  _require(e.remat in REMAT, f"config.execution.remat={e.remat!r}; valid: {', '.join(REMAT)}")
  _require(
    e.fused_cross_entropy or not e.one_pass_logsumexp,
    "config.execution.one_pass_logsumexp needs config.execution.fused_cross_entropy",
  )
  _require(
    t.grad_accum_steps >= 1 and d.batch_size % t.grad_accum_steps == 0,
    f"config.train.grad_accum_steps={t.grad_accum_steps} must divide "
    f"config.data.batch_size={d.batch_size}",
  )
  _require(
    t.steps_per_dispatch >= 1,
    f"config.train.steps_per_dispatch={t.steps_per_dispatch} must be >= 1",
  )
  _require(
    d.seq_len <= m.max_seq_len,
    f"config.data.seq_len={d.seq_len} exceeds config.model.max_seq_len={m.max_seq_len}",
  )
  _require(
    o.name in optim.OPTIMIZERS,
    f"config.optim.name={o.name!r}; valid: {', '.join(optim.OPTIMIZERS)}",
  )
  _require(
    0 <= o.adam_learning_rate < _FLOAT32_MAX,
    f"config.optim.adam_learning_rate={o.adam_learning_rate} must be >= 0",
  )
  _require(
    o.schedule in optim.SCHEDULES,
    f"config.optim.schedule={o.schedule!r}; valid: {', '.join(optim.SCHEDULES)}",
  )
  _require(
    d.tokenizer in token_cache.TOKENIZERS,
    f"config.data.tokenizer={d.tokenizer!r}; valid: {', '.join(token_cache.TOKENIZERS)}",
  )
  _require(
    t.steps > 0 and 0 <= o.warmup_steps < t.steps,
    f"config.optim.warmup_steps={o.warmup_steps} must lie in [0, config.train.steps={t.steps})",
  )
  _require(
    0 < o.learning_rate < _FLOAT32_MAX,
    f"config.optim.learning_rate={o.learning_rate} must be positive and finite",
  )
  for field in ("weight_decay", "grad_clip_norm"):
    _require(
      0 <= o[field] < _FLOAT32_MAX, f"config.optim.{field}={o[field]} must be >= 0 and finite"
    )
  _require(0 <= m.dropout < 1, f"config.model.dropout={m.dropout} must lie in [0, 1)")
  _require(
    0 < d.validation_fraction < 1,
    f"config.data.validation_fraction={d.validation_fraction} must lie in (0, 1)",
  )
  for field in ("log_every", "eval_every", "checkpoint_every"):
    _require(t[field] >= 1, f"config.train.{field}={t[field]} must be >= 1 (steps)")
  _require(
    t.keep_checkpoints >= 1 or t.keep_checkpoints == -1,
    f"config.train.keep_checkpoints={t.keep_checkpoints} would keep no checkpoint; use "
    ">= 1, or -1 to keep them all",
  )
  _require(0 <= t.z_loss < _FLOAT32_MAX, f"config.train.z_loss={t.z_loss} must be >= 0")
  _require(t.watchdog_s >= 0, f"config.train.watchdog_s={t.watchdog_s} must be >= 0 (0: off)")
  _require(
    t.wandb_mode in wandb_mirror.MODES,
    f"config.train.wandb_mode={t.wandb_mode!r}; valid: {', '.join(wandb_mirror.MODES)}",
  )
  _require(
    not t.wandb_project or wandb_mirror.installed(),
    f"config.train.wandb_project={t.wandb_project!r} needs the wandb package, which is not "
    "installed: pip install wandb (or '.[wandb]'), or leave the field empty",
  )
  _require(m.vocab_multiple >= 1, f"config.model.vocab_multiple={m.vocab_multiple} must be >= 1")
  _require(d.batch_size >= 1, f"config.data.batch_size={d.batch_size} must be >= 1")
  _require(
    d.decode_errors in DECODE_ERRORS,
    f"config.data.decode_errors={d.decode_errors!r}; valid: {', '.join(DECODE_ERRORS)}",
  )
  _require(
    not d.document_masking or (m.kind == "decoder" and not m.num_classes),
    "config.data.document_masking=True applies to decoder language models (next-token "
    "prediction), not to encoders or classifiers",
  )
  try:
    data_axis, fsdp, tensor = sharding.mesh_shape(config.mesh, num_devices)
    sources.check_dataset_name(d.dataset)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  if d.dataset == sources.LOCAL:
    _require(
      os.path.exists(os.path.expanduser(d.path)), f"config.data.path={d.path!r} does not exist"
    )
  batch_shards = data_axis * fsdp
  _require(
    d.batch_size % batch_shards == 0,
    f"config.data.batch_size={d.batch_size} must be divisible by mesh data*fsdp={batch_shards}",
  )
  _require(
    d.batch_size % num_processes == 0,
    f"config.data.batch_size={d.batch_size} must be divisible by the {num_processes} processes",
  )
  _require(
    m.d_model % fsdp == 0,
    f"config.model.d_model={m.d_model} must be divisible by config.mesh.fsdp={fsdp}",
  )
  _require(
    m.num_heads % tensor == 0 and m.mlp_dim % tensor == 0,
    f"config.model.num_heads={m.num_heads} and mlp_dim={m.mlp_dim} must be divisible by "
    f"config.mesh.tensor={tensor}",
  )
  _require(
    (m.num_kv_heads or m.num_heads) % tensor == 0,
    f"config.model.num_kv_heads={m.num_kv_heads} must be divisible by config.mesh.tensor="
    f"{tensor} (the KV heads are split over it)",
  )
  _require(
    m.vocab_multiple % tensor == 0,
    f"config.model.vocab_multiple={m.vocab_multiple} must be divisible by "
    f"config.mesh.tensor={tensor}",
  )
