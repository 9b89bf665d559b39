"""The verification run: a fit's predicted compute-optimal model, trained, against the prediction.

`experiments.fit_scaling --predict_flops=C` writes `fit.json` beside a sweep's results, with
the chosen law's N_opt, D_opt and loss at C (`prediction`, lm/scaling/backtest.py). The
verification run is the family member (`grid.ladder` under `scaling.rule`) whose N, counted as
the law counts it (the plan's params convention, or every parameter), is nearest N_opt, on
the tokens that spend C under the plan's FLOP convention, trained by the sweep's method (a run
of its own, or a stable run and its cooldown branch) at the rule's learning rate; with
`scaling.lr_grid`, at the multiplier its size's trials chose, or the nearest size's if its size
had no trials, lowered for its longer horizon by `scaling.lr_horizon_power`. Its runs are
named for the point with `_verify` (e.g. `C3.2e13_L4_d96_verify`, its stable run
`stable_L4_d96_verify`), so they never share a workdir with the sweep's. `verification.json`
beside the results holds its row and the comparison.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from typing import Any

from lm.scaling import cooldown, forecasts, grid, laws, lr_search, noise

FILE = "verification.json"
SUFFIX = "_verify"


def read_fit(workdir: str, config) -> dict[str, Any]:
  """`<workdir>/fit.json`, checked to hold a prediction counted as the plan counts N and C."""
  path = os.path.join(workdir, laws.REPORT_FILE)
  if not os.path.exists(path):
    raise ValueError(
      f"no {path}: run experiments.fit_scaling --results=<sweep>/results.csv "
      "--predict_flops=C first"
    )
  with open(path) as f:
    fit = json.load(f)
  if "law" not in fit.get("prediction", {}):
    raise ValueError(
      f"{path} holds no prediction of a chosen law: fit again with --predict_flops=C"
    )
  n_opt = fit["prediction"]["n_opt"]
  if not 0 < n_opt < math.inf:
    raise ValueError(
      f"{path} predicts N_opt = {n_opt}, no model size: its Approach 3 fit is "
      "degenerate (see its warnings)"
    )
  params, flops = config.scaling.params_convention, config.scaling.flops_convention
  want = {"params": f"params_{params}", "flops": f"flops_{flops}"}
  got = {k: fit["columns"][k] for k in want}
  if got != want:
    raise ValueError(
      f"{path} counts N as {got['params']} and C as {got['flops']}; the plan "
      f"(config.scaling.params_convention={params!r}, "
      f"flops_convention={flops!r}) counts them as {want['params']} "
      f"and {want['flops']}: fit again without --params_col / --flops_col"
    )
  return fit


def plan_runs(
  config,
  vocab_size: int,
  prediction: dict[str, Any],
  points: Sequence[grid.RunPlan],
  choices: dict[str, dict[str, Any]],
) -> tuple[list[grid.RunPlan], dict[str, Any]]:
  """The runs that train the verification point of `prediction` under `scaling.method` (its
  branch after its stable run), then the same with each of `scaling.verify_seeds`, and where
  its learning rate comes from. `points`: the sweep's grid;
  `choices`: its sizes' learning-rate choices (lr_search.choose), needed with `lr_grid`."""
  scaling = config.scaling
  models = grid.ladder(config, vocab_size)
  counted = "total" if prediction["params"] == "total" else scaling.params_convention
  model = grid.closest(models, prediction["n_opt"], counted)
  point = grid.plan_point(config, prediction["flops"], model)
  point = dataclasses.replace(point, name=point.name + SUFFIX)
  source: dict[str, Any] = {"rule": point.learning_rate}
  if scaling.lr_grid:
    params = {lr_search.size_of(p): p.params for p in points}
    chosen = [size for size in choices if size in params]
    if not chosen:
      raise ValueError(
        f"config.scaling.lr_grid={tuple(scaling.lr_grid)}: no size's learning rate is "
        "chosen yet; run the sweep first"
      )
    size = min(chosen, key=lambda k: abs(math.log(params[k] / point.params)))
    multiplier = choices[size]["best_multiplier"]
    trial_steps = min(p.steps for p in points if lr_search.size_of(p) == size)
    factor = lr_search.horizon_factor(config, trial_steps, point.steps)
    point = dataclasses.replace(point, learning_rate=point.learning_rate * multiplier * factor)
    source |= {
      "lr_grid_size": size,
      "same_size": size == lr_search.size_of(point),
      "multiplier": multiplier,
      "horizon_factor": factor,
    }
  noise.check_seeds(config, "verify_seeds")
  runs = cooldown.plan_runs(config, [point])
  runs += [noise.with_seed(r, s) for s in scaling.verify_seeds for r in runs if not r.seed]
  return runs, {**source, "learning_rate": point.learning_rate}


def describe_lr(source: dict[str, Any]) -> str:
  """Where a verification run's learning rate came from (`plan_runs`' second answer)."""
  if "multiplier" not in source:
    return "the rule's"
  whose = "its size's" if source["same_size"] else f"the nearest size's, {source['lr_grid_size']}"
  lowered = source.get("horizon_factor", 1.0)
  horizon = f", x{lowered:.3g} for its longer horizon" if lowered != 1.0 else ""
  return (
    f"the rule's {source['rule']:.3g} x{source['multiplier']:g}, {whose} lr_grid choice{horizon}"
  )


def compare(
  prediction: dict[str, Any],
  row: dict[str, Any],
  columns: dict[str, str],
  repeats: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
  """The trained run (a results-table `row`) against the `prediction` at C (selection.predict)
  and against the predicting law at the run's own N, D and C (a loss-frontier law: its optimum
  at C). N and C are counted as the fit's `columns` say (`params`), and N as the law counts it
  too (`params_as_law_counts`, which `params_ratio` compares with N_opt). With `repeats` (the
  same run's rows with other seeds), the observed loss is the mean over every seed's. Where
  the prediction measured how far seed noise moves it (`seed_noise_spread`), the error is also
  given in units of that sd (`loss_error_in_noise_sd`)."""
  law = forecasts.from_fit(prediction["law"], prediction["fit"])
  params_col = "params_total" if law.params == "total" else columns["params"]
  n, d = float(row[params_col]), float(row["tokens"])
  n_plan = float(row[columns["params"]])
  c = 6 * n_plan * d if columns["flops"] == "6ND" else float(row[columns["flops"]])
  losses = [float(r["eval_loss"]) for r in (row, *repeats)]
  observed = sum(losses) / len(losses)
  ci = prediction["loss_ci"]
  at_run = law.loss_of_run(n, d, c)
  noise_sd = (prediction.get("seed_noise_spread") or {}).get("sd")
  return {
    "predicted": {
      k: prediction[k]
      for k in (
        "law",
        "params",
        "flops",
        "n_opt",
        "n_opt_ci",
        "d_opt",
        "d_opt_ci",
        "loss",
        "loss_ci",
      )
    },
    "trained": {
      "name": row["name"],
      "params": n_plan,
      "params_as_law_counts": n,
      "tokens": d,
      "flops": c,
      "eval_loss": observed,
      "eval_losses": losses,
      "seeds": [None, *(r.get("seed") for r in repeats)],
    },
    "predicted_at_trained": {"loss": at_run},
    "loss_rel_error": observed / prediction["loss"] - 1,
    "loss_error_in_noise_sd": (
      (observed / prediction["loss"] - 1) / noise_sd if noise_sd else None
    ),
    "loss_in_interval": None if ci is None else ci[0] <= observed <= ci[1],
    "loss_at_trained_rel_error": observed / at_run - 1,
    "params_ratio": n / prediction["n_opt"],
    "tokens_ratio": d / prediction["d_opt"],
    "flops_ratio": c / prediction["flops"],
    "columns": columns,
  }


def save(
  workdir: str,
  comparison: dict[str, Any],
  row: dict[str, Any],
  lr_source: dict[str, Any],
  repeats: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
  """Writes `verification.json` (the comparison, the run's row, its rows with other seeds and
  its learning rate's source) beside the results; returns what it wrote."""
  out = {**comparison, "learning_rate_source": lr_source, "row": row, "repeats": list(repeats)}
  with open(os.path.join(workdir, FILE), "w") as f:
    json.dump(out, f, indent=1)
  return out


def load(workdir: str) -> dict[str, Any] | None:
  """What `save` wrote, or None."""
  path = os.path.join(workdir, FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def format_verification(v: dict[str, Any]) -> str:
  """Predicted against observed, as lines."""
  pred, run, at_run = v["predicted"], v["trained"], v["predicted_at_trained"]
  lr_source = v["learning_rate_source"]

  def ci(key_ci: list[float] | None) -> str:
    return f" [{key_ci[0]:.4g}, {key_ci[1]:.4g}]" if key_ci else ""

  inside = {True: "inside", False: "outside", None: "no interval"}[v["loss_in_interval"]]
  if v.get("loss_error_in_noise_sd") is not None:
    inside += f", {v['loss_error_in_noise_sd']:+.1f} sd of its seed-noise spread"
  losses = run.get("eval_losses", [run["eval_loss"]])
  seeds = (
    f" (the mean of {len(losses)} seeds': {', '.join(f'{x:.4g}' for x in losses)})"
    if len(losses) > 1
    else ""
  )
  return "\n".join(
    [
      f"verification at C = {pred['flops']:.4g} FLOPs of {pred['law']}'s forecast: "
      f"{run['name']}, learning rate "
      f"{lr_source['learning_rate']:.3g} ({describe_lr(lr_source)})",
      f"  loss: observed {run['eval_loss']:.4g}{seeds}, predicted {pred['loss']:.4g}"
      f"{ci(pred['loss_ci'])} (observed / predicted - 1: {v['loss_rel_error']:+.2%}, {inside}); "
      "the law at the trained "
      f"N, D, C {at_run['loss']:.4g} ({v['loss_at_trained_rel_error']:+.2%})",
      f"  N {run['params_as_law_counts']:.4g} (predicted N_opt {pred['n_opt']:.4g}"
      f"{ci(pred['n_opt_ci'])}, x{v['params_ratio']:.3g}), D {run['tokens']:.4g} "
      f"(D_opt {pred['d_opt']:.4g}{ci(pred['d_opt_ci'])}, x{v['tokens_ratio']:.3g}), "
      f"C {run['flops']:.4g} (x{v['flops_ratio']:.3g})",
    ]
  )
