"""Cooldown sweeps (Hägele et al. 2024): one constant-learning-rate run per size, and at each
horizon its budgets ask of it a short cooldown branched from that run.

A grid point of S steps becomes the warmup-stable-decay run of S steps that decays over its
last k = optim.cooldown_steps(S, scaling.cooldown_fraction) steps, linearly or as 1 - sqrt
(`scaling.cooldown_shape`) to `optim.final_lr_ratio`. Up to step S - k that run is the size's
stable run (the same warmup and peak, then constant; the data order depends on the step only),
so a branch resumes from a copy of the stable run's checkpoint at S - k, data position
included, and trains the k steps of its decay. Every size has one warmup:
`scaling.warmup_fraction` of its shortest horizon. A branch is named for its grid point
(`<point>_cooldown`), so that it never shares a workdir with an independent run of the point.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence

from lm.scaling import grid
from lm.training import optim

METHODS = ("independent", "cooldown")
SHAPES = {"linear": "wsd", "1-sqrt": "wsd_sqrt"}  # cooldown shape: its optim.schedule


def stable_name(plan: grid.RunPlan) -> str:
  """The name of the stable run of grid point `plan`: its name without the budget, e.g.
  'stable_L4_d64' for 'C2e12_L4_d64' (and 'stable_L4_d64_lr2' for a learning-rate trial's)."""
  return "stable_" + plan.name.split("_", 1)[1]


def _check(scaling) -> None:
  """Raises ValueError for a method, a cooldown shape or a batch rule a sweep cannot train."""
  if scaling.method not in METHODS:
    raise ValueError(f"config.scaling.method={scaling.method!r}; valid: {', '.join(METHODS)}")
  if scaling.method == "independent":
    return
  if scaling.cooldown_shape not in SHAPES:
    raise ValueError(
      f"config.scaling.cooldown_shape={scaling.cooldown_shape!r}; valid: {', '.join(SHAPES)}"
    )
  if scaling.batch_power:
    raise ValueError(
      f"config.scaling.batch_power={scaling.batch_power} must be 0 with "
      "config.scaling.method='cooldown': a size's branches share one run, so "
      "one batch size"
    )


def _branch(scaling, point: grid.RunPlan, stable: str, warmup: int) -> grid.RunPlan:
  """Grid `point`'s cooldown branch of the stable run named `stable`, whose warmup is
  `warmup` steps."""
  at = point.steps - optim.cooldown_steps(point.steps, scaling.cooldown_fraction)
  if at < warmup:
    raise ValueError(
      f"{point.name}: its cooldown of config.scaling.cooldown_fraction="
      f"{scaling.cooldown_fraction} starts at step {at}, inside the warmup of "
      f"{warmup} steps; use a smaller fraction or fewer warmup steps"
    )
  return dataclasses.replace(
    point,
    name=f"{point.name}_cooldown",
    warmup_steps=warmup,
    role="branch",
    schedule=SHAPES[scaling.cooldown_shape],
    decay_fraction=scaling.cooldown_fraction,
    branch_of=stable,
    branch_step=at,
  )


def plan_runs(config, points: Sequence[grid.RunPlan]) -> list[grid.RunPlan]:
  """The runs that train the grid `points` under `config.scaling.method`: the points
  themselves ('independent'), or per size its stable run followed by one branch per point
  ('cooldown')."""
  scaling = config.scaling
  _check(scaling)
  if scaling.method == "independent":
    return list(points)
  sizes: dict[str, list[grid.RunPlan]] = {}
  for p in points:
    sizes.setdefault(stable_name(p), []).append(p)
  runs = []
  for name, unsorted in sizes.items():
    same_size = sorted(unsorted, key=lambda p: p.steps)
    warmup = round(scaling.warmup_fraction * same_size[0].steps)
    branches = [_branch(scaling, p, name, warmup) for p in same_size]
    last = max(b.branch_step for b in branches)
    longest = same_size[-1]
    stable = dataclasses.replace(
      longest,
      name=name,
      budget=0.0,
      steps=last,
      tokens=longest.tokens * last // longest.steps,
      flops=longest.flops * last / longest.steps,
      warmup_steps=warmup,
      role="stable",
      schedule="constant",
      keep_steps=tuple(sorted({b.branch_step for b in branches})),
    )
    runs += [stable, *branches]
  return runs


def flops_saved(points: Sequence[grid.RunPlan], runs: Sequence[grid.RunPlan]) -> dict[str, float]:
  """The training FLOPs of one independent run per grid point, of `runs`, and their ratio."""
  independent = sum(p.flops for p in points)
  spent = sum(r.flops_to_train for r in runs)
  return {"independent": independent, "this_sweep": spent, "ratio": spent / independent}


def start_branch(stable_dir: str, branch_dir: str, step: int) -> None:
  """Gives a new branch the stable run's checkpoint at `step` and its loss curve (metrics.jsonl,
  whose rows past `step` the branch drops as a resumed run does). A branch that has a
  checkpoint of its own (an interrupted one) is left to resume from it."""
  target = os.path.join(branch_dir, "checkpoints")
  if os.path.isdir(target) and os.listdir(target):
    return
  partial = target + ".copying"  # renamed when whole: an interrupted copy is not a checkpoint
  shutil.rmtree(partial, ignore_errors=True)
  shutil.copytree(
    os.path.join(stable_dir, "checkpoints", str(step)), os.path.join(partial, str(step))
  )
  shutil.copy(os.path.join(stable_dir, "metrics.jsonl"), branch_dir)
  os.replace(partial, target)
