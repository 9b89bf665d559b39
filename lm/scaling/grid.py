"""Model ladders and IsoFLOP plans: from compute budgets and a family rule to runs.

A family rule maps a target parameter count to an architecture (depth, width, heads); a plan
places `sizes_per_budget` sizes log-spaced around the guessed optimum
N = sqrt(C / (6 * tokens_per_param)) of each budget, gives each the tokens that spend the
budget under the configured FLOP convention, and derives learning rate, batch and warmup from
the explicit rules in `config.scaling` (see experiments/configs/base.py). With
`scaling.mup_base_width` every size trains under μP from that base width with one learning
rate, the one tuned at the base width (lm/model/mup.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

from lm.model import config as model_config
from lm.model import counts
from lm.model.config import TransformerConfig
from lm.scaling import old_names

# A seed repeat's name (lm/scaling/noise.py): its run's name and this, e.g. 'C8e10_L4_d16_seed1'.
SEED_SUFFIX = "_seed{}"


@dataclasses.dataclass(frozen=True)
class RunPlan:
  """One grid point: an architecture, its budget, and its training hyperparameters."""

  name: str
  budget: float
  num_layers: int
  d_model: int
  num_heads: int
  mlp_dim: int
  params: int  # under config.scaling.params_convention
  tokens: int  # steps * batch_size * seq_len
  flops: float  # tokens * FLOPs per token under config.scaling.flops_convention
  steps: int
  batch_size: int
  learning_rate: float
  warmup_steps: int
  mup_base_width: int = 0  # > 0: trained under μP from this base width (lm/model/mup.py)
  mup_base_head_dim: int = 0  # under μP: the head size at the base width
  # Its part in the sweep: 'point' (a grid point trained as a run of its own), or under the
  # cooldown method (lm/scaling/cooldown.py) 'stable' (a size's constant-learning-rate run) or
  # 'branch' (a grid point's cooldown, started from a stable run).
  role: str = "point"
  schedule: str = ""  # optim.schedule of this run ('': the config's)
  decay_fraction: float = 0.0  # > 0: optim.wsd_decay_fraction of this run
  keep_steps: tuple[int, ...] = ()  # steps whose checkpoints are kept (the branch points)
  branch_of: str = ""  # the stable run a branch starts from,
  branch_step: int = 0  # at this step of it
  lr_trial: bool = False  # a learning-rate trial (lm/scaling/lr_search.py)
  seed: int = 0  # > 0: a seed repeat (lm/scaling/noise.py) trained with config.seed = this

  @property
  def flops_to_train(self) -> float:
    """The training FLOPs this run spends: a branch trains from `branch_step` only."""
    return self.flops * (self.steps - self.branch_step) / self.steps

  @property
  def repeat_of(self) -> str:
    """The run of the sweep's own seed that this seed repeat repeats (its name without
    `SEED_SUFFIX`); '' for a run of the sweep's own seed."""
    return self.name.removesuffix(SEED_SUFFIX.format(self.seed)) if self.seed else ""

  @property
  def adds_row(self) -> bool:
    """Whether the run adds a row to the results table: a stable run only serves its branches."""
    return self.role != "stable"


def architecture(config, index: int, vocab_size: int) -> TransformerConfig:
  """The family's member number `index` (1, 2, ...) under `config.scaling.rule`.

  'aspect_ratio': `index` layers of width aspect_ratio * index; 'fixed_depth':
  fixed_num_layers layers of width index * width_step. Widths and MLP sizes (mlp_ratio * width,
  e.g. 8/3 for SwiGLU) are multiples of width_step; a model has width / width_step heads, or
  `scaling.num_heads` heads of width / num_heads each. The rest of the block (norm, MLP kind,
  KV heads, positions, biases, ...) is config.model's.
  """
  scaling = old_names.upgrade_scaling(config)
  step = scaling.width_step
  if scaling.rule == "aspect_ratio":
    layers, width = index, scaling.aspect_ratio * index
  elif scaling.rule == "fixed_depth":
    layers, width = scaling.fixed_num_layers, index * step
  else:
    raise ValueError(f"config.scaling.rule={scaling.rule!r}; valid: 'aspect_ratio', 'fixed_depth'")
  d_model = max(step, round(width / step) * step)
  mlp_dim = max(step, round(scaling.mlp_ratio * d_model / step) * step)
  family = model_config.architecture(config.model, vocab_size)
  num_heads = scaling.num_heads or d_model // step
  if d_model % num_heads:
    raise ValueError(
      f"config.scaling.num_heads={num_heads} does not divide the width "
      f"{d_model}; widths are multiples of config.scaling.width_step={step}"
    )
  if family.num_kv_heads and num_heads % family.num_kv_heads:
    raise ValueError(
      f"config.model.num_kv_heads={family.num_kv_heads} does not divide the "
      f"{num_heads} heads of a model of width {d_model}"
    )
  return dataclasses.replace(
    family, num_layers=layers, num_heads=num_heads, d_model=d_model, mlp_dim=mlp_dim
  )


def ladder(config, vocab_size: int) -> list[TransformerConfig]:
  """Every distinct family member, smallest first (index 1 .. config.scaling.ladder_size)."""
  size = old_names.upgrade_scaling(config).ladder_size
  return [architecture(config, i, vocab_size) for i in range(1, size + 1)]


def closest(models: list[TransformerConfig], target: float, convention: str) -> TransformerConfig:
  """The member of `models` whose parameter count under `convention` is nearest `target` (in
  log)."""
  sizes = np.array([counts.param_counts(m)[convention] for m in models], float)
  return models[int(np.argmin(np.abs(np.log(sizes / target))))]


def _batch_size(config, budget: float) -> int:
  scaling = config.scaling
  growth = (budget / scaling.batch_ref_budget) ** scaling.batch_power
  return max(1, round(config.data.batch_size * growth))


def _name(budget: float, model: TransformerConfig) -> str:
  return f"C{budget:.2g}_L{model.num_layers}_d{model.d_model}".replace("+", "")


def plan_point(config, budget: float, model: TransformerConfig) -> RunPlan:
  """`model` trained on the tokens that spend `budget` under `config.scaling.flops_convention`,
  with the rules' batch, learning rate and warmup."""
  scaling = config.scaling
  seq_len = config.data.seq_len
  batch = _batch_size(config, budget)
  per_token = counts.training_flops_per_token(model, seq_len, scaling.flops_convention)
  steps = round(budget / per_token / (batch * seq_len))
  params = counts.param_counts(model)[scaling.params_convention]
  tokens = steps * batch * seq_len
  lr_scale = (scaling.lr_ref_params / params) ** scaling.lr_power
  return RunPlan(
    name=_name(budget, model),
    budget=float(budget),
    num_layers=model.num_layers,
    d_model=model.d_model,
    num_heads=model.num_heads,
    mlp_dim=model.mlp_dim,
    params=params,
    tokens=tokens,
    flops=float(tokens * per_token),
    steps=steps,
    batch_size=batch,
    learning_rate=config.optim.learning_rate * lr_scale,
    warmup_steps=round(scaling.warmup_fraction * steps),
    mup_base_width=scaling.mup_base_width,
    mup_base_head_dim=mup_base_head_dim(scaling),
  )


def mup_base_head_dim(scaling) -> int:
  """The head size of the family's member at `scaling.mup_base_width` (0 without μP): the
  width step where heads grow with width, base_width / num_heads where their number is fixed."""
  if not scaling.mup_base_width:
    return 0
  heads = scaling.num_heads or scaling.mup_base_width // scaling.width_step
  return scaling.mup_base_width // heads


def _check_mup(scaling) -> None:
  """Raises ValueError where the rules conflict with μP's one learning rate and head size."""
  if scaling.mup_base_width and scaling.lr_power:
    raise ValueError(
      f"config.scaling.lr_power={scaling.lr_power} must be 0 with "
      f"config.scaling.mup_base_width={scaling.mup_base_width}: under μP every size "
      "keeps the learning rate tuned at the base width"
    )
  heads = scaling.num_heads or scaling.mup_base_width // scaling.width_step
  if scaling.mup_base_width and (
    scaling.mup_base_width % scaling.width_step or scaling.mup_base_width % heads
  ):
    raise ValueError(
      f"config.scaling.mup_base_width={scaling.mup_base_width} must be a width of the family: "
      f"a multiple of config.scaling.width_step={scaling.width_step} that its "
      f"{heads} heads divide"
    )


def plan_runs(config, vocab_size: int) -> list[RunPlan]:
  """The IsoFLOP grid: for every budget, distinct sizes around the guessed optimum."""
  scaling = config.scaling
  _check_mup(scaling)
  models = ladder(config, vocab_size)
  half = math.log(scaling.size_ratio) / 2
  plans = []
  for budget in scaling.budgets:
    guess = math.sqrt(budget / (6 * scaling.tokens_per_param))
    targets = guess * np.exp(np.linspace(-half, half, scaling.sizes_per_budget))
    chosen = dict.fromkeys(closest(models, t, scaling.params_convention) for t in targets)
    planned = (plan_point(config, budget, model) for model in chosen)
    plans += [p for p in planned if p.steps >= scaling.min_steps]
  return plans


def run_overrides(plan: RunPlan) -> dict[str, Any]:
  """The config fields (dotted names; `seed` at the top level) that turn the sweep's config
  into this run's config."""
  overrides = {
    "model.num_layers": plan.num_layers,
    "model.d_model": plan.d_model,
    "model.num_heads": plan.num_heads,
    "model.mlp_dim": plan.mlp_dim,
    "data.batch_size": plan.batch_size,
    "optim.learning_rate": plan.learning_rate,
    "optim.warmup_steps": plan.warmup_steps,
    "train.steps": plan.steps,
    "train.eval_every": plan.steps,
  }
  if plan.schedule:
    overrides["optim.schedule"] = plan.schedule
  if plan.decay_fraction:
    overrides["optim.wsd_decay_fraction"] = plan.decay_fraction
  if plan.keep_steps:
    overrides["train.keep_steps"] = plan.keep_steps
  if plan.seed:
    overrides["seed"] = plan.seed
  if plan.mup_base_width:
    overrides |= {
      "model.parametrization": "mup",
      "model.base_width": plan.mup_base_width,
      "model.base_head_dim": plan.mup_base_head_dim,
    }
  return overrides


def run_config(config, plan: RunPlan):
  """A copy of the sweep's config with this run's overrides applied."""
  run_cfg = config.copy_and_resolve_references()
  for key, value in run_overrides(plan).items():
    *sections, field = key.split(".")
    target = run_cfg
    for section in sections:
      target = target[section]
    target[field] = value
  return run_cfg


PLAN_FILE = "sweep.json"  # beside a sweep's results table


def save_plan(path: str, config, plans: list[RunPlan], **extra: Any) -> None:
  """Writes the plan and its conventions as JSON (a sweep's `sweep.json`), so that what reads
  the results (fit_scaling) counts N and C as the plan did; `extra`: more top-level entries."""
  scaling = config.scaling
  with open(path, "w") as f:
    json.dump(
      {
        "flops_convention": scaling.flops_convention,
        "params_convention": scaling.params_convention,
        "budgets": [float(b) for b in scaling.budgets],
        "method": scaling.method,
        "runs": [dataclasses.asdict(p) for p in plans],
        **extra,
      },
      f,
      indent=1,
    )


def load_plan(path: str) -> dict[str, Any]:
  """What `save_plan` wrote (an older sweep's under today's names: `old_names.upgrade_plan`)."""
  with open(path) as f:
    return old_names.upgrade_plan(json.load(f))


SHAPE = ("params", "tokens", "steps", "batch_size")  # what makes a grid point the same run


def differs_from_saved(path: str, points: list[RunPlan]) -> str:
  """How the grid `points` differ from the plan saved at `path` (`save_plan`) in their names
  or `SHAPE`: '' where they agree or nothing is saved (learning rates are not compared: a
  round's plan rewrites them once its trials chose)."""
  if not os.path.exists(path):
    return ""
  saved = {r["name"]: tuple(r[k] for k in SHAPE) for r in load_plan(path)["runs"]}
  now = {p.name: tuple(getattr(p, k) for k in SHAPE) for p in points}
  differ = sorted(n for n in saved.keys() | now.keys() if saved.get(n) != now.get(n))
  if not differ:
    return ""
  return (
    f"these flags plan {len(now)} grid points, {path} {len(saved)}; {len(differ)} differ "
    f"(e.g. {differ[0]}): is this the config and overrides the sweep was started with?"
  )
