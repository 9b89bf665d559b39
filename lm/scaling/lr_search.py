"""A learning rate per size (`scaling.lr_grid`): trials of each multiplier of the rule's
learning rate at the size's shortest horizon, then the size's grid points at the best.

Independent method: a trial is the size's shortest grid point at that learning rate. Cooldown
method: a trial is a stable run to the size's first branch point and the branch there; the
size's stable run then continues the best trial's from a copy of its last checkpoint, as a
branch starts, to the later branch points. Trials add rows to `lr_trials.jsonl`, beside the
results table; `lr_choice.json` holds per size the trials' eval losses, the learning rate chosen
and whether it lies at an edge of the grid (then the optimum may lie outside it).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from lm.scaling import cooldown, grid

TRIALS_JSONL = "lr_trials.jsonl"
CHOICE_FILE = "lr_choice.json"


def size_of(plan: grid.RunPlan) -> str:
  """The size a run trains, e.g. 'L4_d64'."""
  return f"L{plan.num_layers}_d{plan.d_model}"


def by_size(points: Sequence[grid.RunPlan]) -> dict[str, list[grid.RunPlan]]:
  """The grid points of each size, shortest first."""
  sizes: dict[str, list[grid.RunPlan]] = {}
  for p in points:
    sizes.setdefault(size_of(p), []).append(p)
  return {k: sorted(v, key=lambda p: p.steps) for k, v in sizes.items()}


def _trial(config, shortest: grid.RunPlan, multiplier: float) -> list[grid.RunPlan]:
  """The runs of one trial: the shortest point at `multiplier` times its learning rate."""
  point = dataclasses.replace(
    shortest,
    name=f"{shortest.name}_lr{multiplier:g}",
    learning_rate=shortest.learning_rate * multiplier,
    lr_trial=True,
  )
  return cooldown.plan_runs(config, [point])


def trial_runs(config, points: Sequence[grid.RunPlan]) -> list[grid.RunPlan]:
  """Every size's trials, one per multiplier in `config.scaling.lr_grid`."""
  return [
    r
    for same_size in by_size(points).values()
    for m in config.scaling.lr_grid
    for r in _trial(config, same_size[0], m)
  ]


def choose(
  config, points: Sequence[grid.RunPlan], losses: dict[str, float]
) -> dict[str, dict[str, Any]]:
  """Per size whose trials have all finished (`losses`: their eval losses by run name): the
  multipliers, learning rates and eval losses of its trials, the best, and `at_edge`."""
  multipliers = sorted(config.scaling.lr_grid)
  choices = {}
  for size, same_size in by_size(points).items():
    scored = [_trial(config, same_size[0], m)[-1].name for m in multipliers]
    if not all(name in losses for name in scored):
      continue
    trial_losses = [losses[name] for name in scored]
    best = multipliers[trial_losses.index(min(trial_losses))]
    base = same_size[0].learning_rate
    choices[size] = {
      "multipliers": multipliers,
      "learning_rates": [base * m for m in multipliers],
      "eval_losses": trial_losses,
      "best_multiplier": best,
      "learning_rate": base * best,
      "at_edge": len(multipliers) > 1 and best in (multipliers[0], multipliers[-1]),
    }
  return choices


def horizon_factor(config, trial_steps: int, steps: int) -> float:
  """How much lower than its trials' best a run `steps` long trains, where the trials ran
  `trial_steps`: (steps / trial_steps)^-`scaling.lr_horizon_power` (1 where it is 0 or the run
  is no longer). The best learning rate falls as the horizon grows (Bjorck et al. 2024)."""
  power = config.scaling.lr_horizon_power
  return (steps / trial_steps) ** -power if power and steps > trial_steps else 1.0


def at_chosen_rate(
  config, points: Sequence[grid.RunPlan], choice: dict[str, Any]
) -> list[grid.RunPlan]:
  """The grid `points` of a size (shortest first: its trials' horizon) at the learning rate its
  trials chose (`choice`: `choose`'s answer for the size), lowered by `horizon_factor` for the
  horizon of each point ('independent') or of the size's longest ('cooldown': its branches share
  one stable run)."""
  multiplier = choice["best_multiplier"]
  shortest, longest = points[0].steps, max(p.steps for p in points)
  cooldown_ = config.scaling.method == "cooldown"
  return [
    dataclasses.replace(
      p,
      learning_rate=p.learning_rate
      * multiplier
      * horizon_factor(config, shortest, longest if cooldown_ else p.steps),
    )
    for p in points
  ]


def main_runs(
  config, points: Sequence[grid.RunPlan], choices: dict[str, dict[str, Any]]
) -> list[grid.RunPlan]:
  """The runs that train the grid points of the sizes in `choices` at their chosen learning
  rates (`at_chosen_rate`); a cooldown sweep's stable run continues the best trial's, unless its
  rate is lowered for its horizon (then it starts afresh)."""
  runs = []
  for size, same_size in by_size(points).items():
    if size not in choices:
      continue
    best = choices[size]["best_multiplier"]
    planned = cooldown.plan_runs(config, at_chosen_rate(config, same_size, choices[size]))
    lowered = horizon_factor(config, same_size[0].steps, same_size[-1].steps) < 1
    if config.scaling.method == "cooldown" and not lowered:
      trial = _trial(config, same_size[0], best)[0]
      stable, branches = planned[0], planned[1:]
      if stable.steps == trial.steps:  # one horizon: its branch starts from the trial's run
        planned = [dataclasses.replace(b, branch_of=trial.name) for b in branches]
      else:
        planned[0] = dataclasses.replace(stable, branch_of=trial.name, branch_step=trial.steps)
    runs += planned
  return runs


def every_run(config, points: Sequence[grid.RunPlan]) -> list[grid.RunPlan]:
  """The trials and the runs after them, as if each size chose its first multiplier: what the
  sweep trains, whatever the choices (for its FLOPs)."""
  return trial_runs(config, points) + main_runs(config, points, every_choice(config, points))


def every_choice(config, points: Sequence[grid.RunPlan]) -> dict[str, dict[str, Any]]:
  """Every size as if it chose its first multiplier: the choices that plan what the sweep
  trains, whatever the trials choose (for its FLOPs)."""
  return {size: {"best_multiplier": config.scaling.lr_grid[0]} for size in by_size(points)}


def save_choices(path: str, choices: dict[str, dict[str, Any]]) -> None:
  """Writes `choose`'s answer as JSON (a sweep's `lr_choice.json`)."""
  with open(path, "w") as f:
    json.dump(choices, f, indent=1)
