"""Seed repeats (`scaling.noise_sizes`, `scaling.noise_seeds`): a sweep's own measure of how
much a run's loss moves with its seed alone.

Each named size trains its grid points again, every budget, with each of the seeds, at the
learning rate of its runs (with `scaling.lr_grid`: the one its trials chose), from scratch: a
cooldown sweep's repeat has a stable run of its own from step 0. A repeat is named for the run
it repeats with `_seed<s>` after it (`C8e10_L4_d16_cooldown_seed1`, `stable_L4_d16_seed1`), and
its row goes to `seed_repeats.jsonl` beside the results table, with its `seed` and the name of
the row it repeats (`repeat_of`). `seed_noise` pools what they measure into one relative sigma.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lm.scaling import cooldown, forecasts, grid, lr_search, results

REPEATS_JSONL = "seed_repeats.jsonl"


def check_seeds(config, field: str) -> None:
  """Raises ValueError where `config.scaling.<field>` (extra seeds) are not distinct positive
  integers other than config.seed (the sweep's own runs'): 0 on a RunPlan means the latter."""
  seeds = tuple(config.scaling[field])
  if len(set(seeds)) != len(seeds) or any(s <= 0 or s == config.seed for s in seeds):
    raise ValueError(
      f"config.scaling.{field}={seeds}: the seeds must be distinct positive integers "
      f"other than config.seed={config.seed} (the sweep's own runs')"
    )


def _check(config, sizes: Sequence[str]) -> None:
  """Raises ValueError for noise fields a sweep cannot plan; `sizes`: the plan's sizes."""
  scaling = config.scaling
  named, seeds = tuple(scaling.noise_sizes), tuple(scaling.noise_seeds)
  if bool(named) != bool(seeds):
    raise ValueError(
      f"config.scaling.noise_sizes={named} and config.scaling.noise_seeds={seeds}: give both "
      "(the sizes to repeat and the seeds to repeat them with) or neither"
    )
  check_seeds(config, "noise_seeds")
  missing = [s for s in named if s not in sizes]
  if missing:
    raise ValueError(
      f"config.scaling.noise_sizes: {', '.join(missing)} not in the plan; its sizes: "
      f"{', '.join(sizes)}"
    )


def with_seed(run: grid.RunPlan, seed: int) -> grid.RunPlan:
  """`run` trained with `seed`, under its name with the seed's suffix (its stable run's too)."""
  suffix = grid.SEED_SUFFIX.format(seed)
  return dataclasses.replace(
    run, name=run.name + suffix, branch_of=run.branch_of and run.branch_of + suffix, seed=seed
  )


def repeat_runs(
  config, points: Sequence[grid.RunPlan], choices: dict[str, dict[str, Any]]
) -> list[grid.RunPlan]:
  """The seed repeats of the sizes in `config.scaling.noise_sizes`: per size and seed in
  `noise_seeds`, the runs that train its grid `points` under `scaling.method` from scratch.
  With `scaling.lr_grid`, only the sizes in `choices` (`lr_search.choose`), at the learning
  rate chosen. Raises ValueError for noise fields that do not fit the plan."""
  sizes = lr_search.by_size(points)
  _check(config, list(sizes))
  runs = []
  for size in dict.fromkeys(config.scaling.noise_sizes):
    if config.scaling.lr_grid and size not in choices:
      continue  # planned once its trials have chosen
    same_size = sizes[size]
    if config.scaling.lr_grid:
      same_size = lr_search.at_chosen_rate(config, same_size, choices[size])
    planned = cooldown.plan_runs(config, same_size)
    runs += [with_seed(r, seed) for seed in config.scaling.noise_seeds for r in planned]
  return runs


def read_repeats(results_dir: str) -> list[dict[str, Any]]:
  """The rows of `<results_dir>/seed_repeats.jsonl`, in order ([] where it is absent)."""
  return results.read_results(results_dir, REPEATS_JSONL)


def _groups(
  rows: list[dict[str, Any]], repeats: list[dict[str, Any]], loss_col: str
) -> list[dict[str, Any]]:
  """Each row that has repeats with its repeats' seeds and losses (finite ones only; the row's
  seed is None, the sweep's config.seed); a row's or repeat's latest row counts."""
  by_name = {r["name"]: r for r in rows}
  repeated: dict[str, dict[str, dict[str, Any]]] = {}
  for r in repeats:
    if r["repeat_of"] in by_name:
      repeated.setdefault(r["repeat_of"], {})[r["name"]] = r
  groups = []
  for name, same_point in repeated.items():
    seeded = [(by_name[name].get("seed"), by_name[name][loss_col])]
    seeded += [(r["seed"], r[loss_col]) for r in same_point.values()]
    kept = [(seed, float(loss)) for seed, loss in seeded if math.isfinite(float(loss))]
    groups.append(
      {
        "name": name,
        "budget": by_name[name].get("budget"),
        "seeds": [s for s, _ in kept],
        "losses": [loss for _, loss in kept],
      }
    )
  return groups


def _pooled(groups: list[dict[str, Any]]) -> dict[str, Any]:
  """The groups' sds pooled by their degrees of freedom."""
  dof = sum(len(g["losses"]) - 1 for g in groups)
  pooled = sum((len(g["losses"]) - 1) * g["sd"] ** 2 for g in groups) / dof
  return {"sigma": math.sqrt(pooled), "dof": dof, "num_groups": len(groups)}


def seed_noise(
  rows: list[dict[str, Any]], repeats: list[dict[str, Any]], loss_col: str = "eval_loss"
) -> dict[str, Any] | None:
  """The seed noise that `repeats` (seed_repeats.jsonl's rows) measure against the results
  table's `rows`: per row with repeats (a repeat whose `repeat_of` is not in `rows` is left
  out), the standard deviation (ddof=1) of log(`loss_col`) over its seeds, and `sigma`, these
  pooled over the groups by their degrees of freedom: a relative sigma of the loss.

  Returns None where no group has two losses, else {"sigma", "dof" (the pooled degrees of
  freedom), "num_groups", "groups": [{"name", "budget", "seeds", "losses", "sd"}],
  "at_largest_budget": the same pooled over the groups of the largest budget repeated, with
  its `budget`}: a run's loss moves less with its seed the longer it trains, so a forecast
  beyond the table takes this one. The seed of the sweep's own run is None (its config.seed).
  A non-finite loss is left out. A size's groups share its stable runs, so they are not
  independent: the degrees of freedom overstate the evidence.
  """
  groups = [g for g in _groups(rows, repeats, loss_col) if len(g["losses"]) >= 2]
  if not groups:
    return None
  for g in groups:
    g["sd"] = float(np.std(np.log(g["losses"]), ddof=1))
  budgets = [float(g["budget"]) for g in groups if g["budget"] is not None]
  largest = max(budgets) if budgets else None
  at_largest = [
    g
    for g in groups
    if largest is None or (g["budget"] is not None and float(g["budget"]) == largest)
  ]
  return {
    **_pooled(groups),
    "groups": groups,
    "at_largest_budget": {"budget": largest, **_pooled(at_largest)},
  }


def budget_sigmas(noise: dict[str, Any]) -> dict[float, float]:
  """Each repeated budget's sigma: `seed_noise`'s groups of that budget pooled."""
  by_budget: dict[float, list[dict[str, Any]]] = {}
  for g in noise["groups"]:
    if g["budget"] is not None:
      by_budget.setdefault(float(g["budget"]), []).append(g)
  return {b: _pooled(groups)["sigma"] for b, groups in by_budget.items()}


def forecast_spread(
  table: forecasts.Table, law: str, c: float, noise: dict[str, Any], draws: int = 200, seed: int = 0
) -> dict[str, Any]:
  """How far seed noise alone moves `law`'s forecast of the optimal loss at compute `c`: the
  table's losses redrawn `draws` times, each times a log-normal factor of its budget's measured
  sigma (`budget_sigmas`; the pooled sigma at a budget not repeated), and the law refitted.

  Returns {"draws", "draws_ok" (refits that forecast a finite loss), "sigmas" (per budget, as
  used), "sd" (the forecasts' relative sd), "loss_range" (their 2.5 and 97.5 percentiles)}.
  The measured losses carry their own noise, so this is the spread of a table as noisy as this
  one measured again. Each run is redrawn on its own, though a cooldown size's branches share a
  stable run (their noise is correlated), so the spread may be understated."""
  measured = budget_sigmas(noise)
  sigmas = {float(b): measured.get(float(b), noise["sigma"]) for b in np.unique(table.budget)}
  scale = np.array([sigmas[float(b)] for b in table.budget])
  full = forecasts.fit_law(law, table)
  rng = np.random.default_rng(seed)
  losses = []
  for _ in range(draws):
    redrawn = table.final.loss * np.exp(rng.normal(0.0, 1.0, len(scale)) * scale)
    points = dataclasses.replace(table.final, loss=redrawn)
    try:
      loss = forecasts.fit_law(law, forecasts.Table(points, table.n_total), start=full).loss(c)
    except (ValueError, np.linalg.LinAlgError):
      continue
    if np.isfinite(loss):
      losses.append(loss)
  out: dict[str, Any] = {"draws": draws, "draws_ok": len(losses), "sigmas": sigmas}
  if len(losses) < 2:
    return {**out, "sd": None, "loss_range": None}
  values = np.array(losses)
  return {
    **out,
    "sd": float(np.std(values, ddof=1) / np.mean(values)),
    "loss_range": np.percentile(values, [2.5, 97.5]).tolist(),
  }
