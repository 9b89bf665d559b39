"""Checks a run's config at start, so a bad field fails in one line that names it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from lm.data import inputs, sources, tokenizer
from lm.data.local_text import DECODE_ERRORS, is_glob
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
  TransformerConfig,
)
from lm.model.layers import ACTIVATIONS
from lm.runs import wandb_mirror
from lm.runtime import paths, sharding
from lm.training import optim

_FLOAT32_MAX = 3.4e38  # larger values overflow to inf in the float32 optimizer


class ConfigError(ValueError):
  """A config field is invalid; the message names it and what would be valid."""


def _require(ok: bool, message: str) -> None:
  if not ok:
    raise ConfigError(message)


def _require_one_of(section: str, field: str, value: Any, valid: Iterable[str]) -> None:
  valid = tuple(valid)
  _require(value in valid, f"config.{section}.{field}={value!r}; valid: {', '.join(valid)}")


def check(config, num_devices: int, num_processes: int = 1) -> None:
  """Raises ConfigError for the first invalid field found."""
  _check_architecture(config.model)
  _check_positions(config.model)
  _check_parametrization(config.model, config.optim)
  _check_fits_model(config)
  _check_mlm(config.mlm)
  _check_execution(config.execution)
  _check_optim(config.optim, config.train)
  _check_train(config.train, config.data)
  _check_data(config.data, config.model)
  _check_mesh(config, num_devices, num_processes)


def check_pretrained(config, model_cfg: TransformerConfig, has_tokenizer: bool) -> None:
  """The checks that need the pretrained model of `config.init_from` (`model_cfg`)."""
  source = f"config.init_from={config.init_from!r}"
  _require(has_tokenizer, f"{source} has no tokenizer")
  _require(
    config.optim.freeze_layers <= model_cfg.num_layers,
    f"config.optim.freeze_layers={config.optim.freeze_layers} exceeds the "
    f"{model_cfg.num_layers} layers of {source}",
  )
  _require(
    config.data.seq_len <= model_cfg.max_seq_len,
    f"config.data.seq_len={config.data.seq_len} exceeds the max_seq_len="
    f"{model_cfg.max_seq_len} of {source}",
  )


def _check_architecture(model) -> None:
  _require(
    model.num_heads > 0 and model.d_model % model.num_heads == 0,
    f"config.model.d_model={model.d_model} must be divisible by config.model.num_heads="
    f"{model.num_heads}",
  )
  _require_one_of("model", "kind", model.kind, KINDS)
  _require_one_of("model", "norm", model.norm, NORMS)
  _require_one_of("model", "mlp", model.mlp, MLPS)
  _require(
    model.num_kv_heads >= 0
    and (model.num_kv_heads == 0 or model.num_heads % model.num_kv_heads == 0),
    f"config.model.num_kv_heads={model.num_kv_heads} must divide config.model.num_heads="
    f"{model.num_heads} (0: as many as num_heads)",
  )
  _require_one_of("model", "norm_position", model.norm_position, NORM_POSITIONS)
  _require_one_of("model", "activation", model.activation, ACTIVATIONS)
  _require(model.num_classes >= 0, f"config.model.num_classes={model.num_classes} must be >= 0")
  _require(0 <= model.dropout < 1, f"config.model.dropout={model.dropout} must lie in [0, 1)")
  _require(
    model.vocab_multiple >= 1, f"config.model.vocab_multiple={model.vocab_multiple} must be >= 1"
  )


def _check_positions(model) -> None:
  _require_one_of("model", "position", model.position, POSITIONS)
  _require(
    model.position != "rotary" or (model.d_model // model.num_heads) % 2 == 0,
    f"config.model: rotary positions need an even head size, got "
    f"{model.d_model // model.num_heads}",
  )
  _require(model.rope_theta > 0, f"config.model.rope_theta={model.rope_theta} must be > 0")
  _require_one_of("model", "rope_scaling", model.rope_scaling, ROPE_SCALINGS)
  _require(
    model.rope_scaling == "none" or model.position == "rotary",
    f"config.model.rope_scaling={model.rope_scaling!r} needs config.model.position='rotary'",
  )
  _require(
    model.rope_scaling_factor >= 1,
    f"config.model.rope_scaling_factor={model.rope_scaling_factor} must be >= 1",
  )
  _require(
    0 < model.rope_low_freq_factor < model.rope_high_freq_factor,
    f"config.model: rope_low_freq_factor={model.rope_low_freq_factor} and "
    f"rope_high_freq_factor={model.rope_high_freq_factor} must satisfy 0 < low < high",
  )
  _require(
    model.rope_original_max_len >= 1,
    f"config.model.rope_original_max_len={model.rope_original_max_len} must be >= 1",
  )


def _check_parametrization(model, optim_cfg) -> None:
  _require_one_of("model", "parametrization", model.parametrization, PARAMETRIZATIONS)
  if model.parametrization != "mup":
    _require(
      model.mup_output_multiplier == 1.0,
      f"config.model.mup_output_multiplier={model.mup_output_multiplier} is μP's "
      "(config.model.parametrization='mup'); the standard parametrization has none",
    )
    return
  _require(
    model.mup_output_multiplier > 0,
    f"config.model.mup_output_multiplier={model.mup_output_multiplier} must be > 0",
  )
  _require(
    model.base_width > 0 and model.base_head_dim > 0,
    f"config.model.parametrization='mup' needs config.model.base_width={model.base_width} "
    f"and base_head_dim={model.base_head_dim} > 0 (the width and head size the learning "
    "rate was tuned at)",
  )
  _require(
    model.kind == "decoder" and not model.num_classes,
    "config.model.parametrization='mup' is implemented for decoder language models "
    "(kind='decoder', num_classes=0)",
  )
  _require(
    optim_cfg.name != "muon",
    "config.optim.name='muon' with config.model.parametrization='mup': μP's table "
    "here is for Adam-family optimizers (adamw, lion, adafactor)",
  )


def _check_fits_model(config) -> None:
  """The model's depth and context against what the run asks of them; with `init_from` the
  model is the pretrained one, checked once it is loaded (`check_pretrained`)."""
  model, freeze_layers = config.model, config.optim.freeze_layers
  _require(
    freeze_layers >= 0 and (config.init_from or freeze_layers <= model.num_layers),
    f"config.optim.freeze_layers={freeze_layers} must lie in [0, config.model.num_layers="
    f"{model.num_layers}]",
  )
  _require(
    config.init_from or config.data.seq_len <= model.max_seq_len,
    f"config.data.seq_len={config.data.seq_len} exceeds config.model.max_seq_len="
    f"{model.max_seq_len}",
  )


def _check_mlm(mlm) -> None:
  _require(
    0 < mlm.select_prob <= 1
    and min(mlm.mask_frac, mlm.random_frac) >= 0
    and mlm.mask_frac + mlm.random_frac <= 1,
    f"config.mlm: select_prob={mlm.select_prob} must lie in (0, 1] and mask_frac="
    f"{mlm.mask_frac} + random_frac={mlm.random_frac} in [0, 1]",
  )


def _check_execution(execution) -> None:
  for field in ("param_dtype", "compute_dtype", "logits_dtype"):
    _require_one_of("execution", field, execution[field], DTYPES)
  _require_one_of("execution", "attention_impl", execution.attention_impl, ATTENTION_IMPLS)
  _require_one_of("execution", "remat", execution.remat, REMAT)
  _require(
    execution.fused_cross_entropy or not execution.one_pass_logsumexp,
    "config.execution.one_pass_logsumexp needs config.execution.fused_cross_entropy",
  )


def _check_optim(optim_cfg, train) -> None:
  _require_one_of("optim", "name", optim_cfg.name, optim.OPTIMIZERS)
  _require(
    0 <= optim_cfg.adam_learning_rate < _FLOAT32_MAX,
    f"config.optim.adam_learning_rate={optim_cfg.adam_learning_rate} must be >= 0",
  )
  _require_one_of("optim", "schedule", optim_cfg.schedule, optim.SCHEDULES)
  _require(
    train.steps > 0 and 0 <= optim_cfg.warmup_steps < train.steps,
    f"config.optim.warmup_steps={optim_cfg.warmup_steps} must lie in [0, config.train.steps="
    f"{train.steps})",
  )
  _require(
    0 < optim_cfg.learning_rate < _FLOAT32_MAX,
    f"config.optim.learning_rate={optim_cfg.learning_rate} must be positive and finite",
  )
  for field in ("weight_decay", "grad_clip_norm"):
    _require(
      0 <= optim_cfg[field] < _FLOAT32_MAX,
      f"config.optim.{field}={optim_cfg[field]} must be >= 0 and finite",
    )


def _check_train(train, data) -> None:
  _require(
    train.grad_accum_steps >= 1 and data.batch_size % train.grad_accum_steps == 0,
    f"config.train.grad_accum_steps={train.grad_accum_steps} must divide "
    f"config.data.batch_size={data.batch_size}",
  )
  _require(
    train.steps_per_dispatch >= 1,
    f"config.train.steps_per_dispatch={train.steps_per_dispatch} must be >= 1",
  )
  for field in ("log_every", "eval_every", "checkpoint_every"):
    _require(train[field] >= 1, f"config.train.{field}={train[field]} must be >= 1 (steps)")
  _require(
    train.keep_checkpoints >= 1 or train.keep_checkpoints == -1,
    f"config.train.keep_checkpoints={train.keep_checkpoints} would keep no checkpoint; use "
    ">= 1, or -1 to keep them all",
  )
  _require(0 <= train.z_loss < _FLOAT32_MAX, f"config.train.z_loss={train.z_loss} must be >= 0")
  _require(
    train.watchdog_s >= 0, f"config.train.watchdog_s={train.watchdog_s} must be >= 0 (0: off)"
  )
  _require_one_of("train", "wandb_mode", train.wandb_mode, wandb_mirror.MODES)
  _require(
    not train.wandb_project or wandb_mirror.installed(),
    f"config.train.wandb_project={train.wandb_project!r} needs the wandb package, which is "
    "not installed: pip install wandb (or '.[wandb]'), or leave the field empty",
  )


def _check_data(data, model) -> None:
  _require_one_of("data", "tokenizer", data.tokenizer, tokenizer.TOKENIZERS)
  _require(
    0 < data.validation_fraction < 1,
    f"config.data.validation_fraction={data.validation_fraction} must lie in (0, 1)",
  )
  _require(data.batch_size >= 1, f"config.data.batch_size={data.batch_size} must be >= 1")
  _require_one_of("data", "decode_errors", data.decode_errors, DECODE_ERRORS)
  _require_one_of("data", "format", data.format, inputs.FORMATS)
  _require(
    not data.document_masking or (model.kind == "decoder" and not model.num_classes),
    "config.data.document_masking=True applies to decoder language models (next-token "
    "prediction), not to encoders or classifiers",
  )
  try:
    sources.check_dataset_name(data.dataset)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  if data.dataset == sources.LOCAL and not (paths.is_remote(data.path) or is_glob(data.path)):
    bundled = os.path.join(paths.PROJECT_ROOT, data.path)
    where = (
      f" here; the repository's is {bundled} (run from {paths.PROJECT_ROOT}, or set "
      f"--config.data.path={bundled})"
      if not os.path.isabs(data.path) and os.path.exists(bundled)
      else ""
    )
    _require(
      os.path.exists(os.path.expanduser(data.path)),
      f"config.data.path={data.path!r} does not exist{where}",
    )


def _check_mesh(config, num_devices: int, num_processes: int) -> None:
  """The mesh against the devices, and what it splits: the batch over data x fsdp, the
  parameters over fsdp, heads, MLP and vocabulary over tensor."""
  try:
    data_axis, fsdp, tensor = sharding.mesh_shape(config.mesh, num_devices)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  batch_size, model = config.data.batch_size, config.model
  batch_shards = data_axis * fsdp
  _require(
    batch_size % batch_shards == 0,
    f"config.data.batch_size={batch_size} must be divisible by mesh data*fsdp={batch_shards}",
  )
  _require(
    batch_size % num_processes == 0,
    f"config.data.batch_size={batch_size} must be divisible by the {num_processes} processes",
  )
  _require(
    model.d_model % fsdp == 0,
    f"config.model.d_model={model.d_model} must be divisible by config.mesh.fsdp={fsdp}",
  )
  _require(
    model.num_heads % tensor == 0 and model.mlp_dim % tensor == 0,
    f"config.model.num_heads={model.num_heads} and mlp_dim={model.mlp_dim} must be divisible "
    f"by config.mesh.tensor={tensor}",
  )
  _require(
    (model.num_kv_heads or model.num_heads) % tensor == 0,
    f"config.model.num_kv_heads={model.num_kv_heads} must be divisible by config.mesh.tensor="
    f"{tensor} (the KV heads are split over it)",
  )
  _require(
    model.vocab_multiple % tensor == 0,
    f"config.model.vocab_multiple={model.vocab_multiple} must be divisible by "
    f"config.mesh.tensor={tensor}",
  )
