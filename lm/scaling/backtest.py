"""Backtesting: how well each law (lm/scaling/forecasts.py) has predicted the study's own larger
budgets, the law that predicted best, and a forecast whose interval covers what it missed by.

Rolling origin: for each k from `MIN_ORIGIN` to K - 1 of the table's K budgets (smallest
first), each law is fitted on the k smallest and predicts the optimal loss and N_opt of every
later budget; the measured optimum of a budget is its Approach 2 parabola minimum (its best run
where Approach 2 left it out). Errors are relative (predicted / measured - 1), and a pair's
distance is in decades of compute beyond the largest budget fitted. The laws are ranked by the
mean |loss error| over every pair.

Calibration: a law's errors grow with distance (a biased law's in proportion to it), and a
law that misses a bending frontier misses more the further along it was fitted. So each pair's
error per decade, u = e / distance, is fitted as a line in the log compute of the largest budget
the pair's law was fitted on; the line at the table's largest budget is the law's bias per
decade there, and the scatter about it its sd per decade. A forecast `distance` decades beyond
the table is widened by `t * sd * distance` each way (t: Student's 97.5% point for the line's
degrees of freedom) and by `|bias| * distance` on the side the law has erred towards. The
forecast's interval is the widest of that, the bootstrap's and the seed noise's (`Z95 * sigma`)
on each side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from lm.scaling import forecasts, laws

MIN_ORIGIN = 3  # the fewest budgets a backtest fits on (Approach 3 over fewer says little)
Z95 = 1.959964  # the normal's 97.5% point
KEYS = ("loss", "n_opt", "d_opt")


def reference(final: laws.Points, fit2: dict[str, Any], budget: float) -> dict[str, Any]:
  """A budget's measured optimum: its Approach 2 parabola minimum, else its best run."""
  for row in fit2.get("budgets", []):
    if row["budget"] == budget:
      return {"n_opt": row["n_opt"], "loss": row["loss_opt"], "source": "approach2 parabola"}
  g = final.take(final.budget == budget)
  i = int(np.argmin(g.loss))
  return {"n_opt": float(g.n[i]), "loss": float(g.loss[i]), "source": "best run"}


def _references(table: forecasts.Table) -> dict[str, dict[float, dict[str, Any]]]:
  """Each budget's measured optimum, with N counted as the plan counts it and (where the
  table has it) as every parameter."""
  out = {}
  counted = {"plan": table.final}
  if table.n_total is not None:
    counted["total"] = table.total()
  for params, points in counted.items():
    try:
      fit2 = laws.approach2(points)
    except ValueError:
      fit2 = {}
    out[params] = {float(b): reference(points, fit2, b) for b in np.unique(points.budget)}
  return out


def _at(f: forecasts.Forecast, c: float) -> dict[str, float]:
  return {"n_opt": f.n_opt(c), "d_opt": f.d_opt(c), "loss": f.loss(c)}


def _pairs(
  table: forecasts.Table, names: tuple[str, ...]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
  """Every (origin, later budget) pair's prediction per law of `names`, and the fits that
  failed (a fit that forecasts a loss or N_opt that is not finite and positive fails too)."""
  compute = table.budget_compute()
  budgets = sorted(compute)
  refs = _references(table)
  pairs, failed = [], []
  for k in range(MIN_ORIGIN, len(budgets)):
    fitted = table.take(table.budget < budgets[k])
    last = compute[budgets[k - 1]]
    for law in names:
      try:
        forecast = forecasts.fit_law(law, fitted)
        ahead = [_at(forecast, compute[b]) for b in budgets[k:]]
      except ValueError as e:
        failed.append({"law": law, "origin": k, "error": str(e)})
        continue
      if not all(0 < v < np.inf for at in ahead for v in at.values()):
        failed.append({"law": law, "origin": k, "error": "a forecast is not finite and positive"})
        continue
      for j, at in enumerate(ahead, k):
        c = compute[budgets[j]]
        ref = refs[forecast.params][budgets[j]]
        loss, n_opt = at["loss"], at["n_opt"]
        pairs.append(
          {
            "law": law,
            "origin": k,
            "fitted_up_to": budgets[k - 1],
            "budget": budgets[j],
            "steps_ahead": j - k + 1,
            "c": c,
            "decades": float(np.log10(c / last)),
            "loss": loss,
            "loss_measured": ref["loss"],
            "loss_error": loss / ref["loss"] - 1,
            "n_opt": n_opt,
            "n_opt_measured": ref["n_opt"],
            "n_opt_error": n_opt / ref["n_opt"] - 1,
          }
        )
  return pairs, failed


def _errors(pairs: list[dict[str, Any]]) -> dict[str, Any]:
  e = np.array([p["loss_error"] for p in pairs])
  n = np.array([p["n_opt_error"] for p in pairs])
  return {
    "pairs": len(pairs),
    "loss_mean_abs": float(np.mean(np.abs(e))),
    "loss_mean_signed": float(np.mean(e)),
    "n_opt_mean_abs": float(np.mean(np.abs(n))),
  }


def calibration(pairs: list[dict[str, Any]], c_last: float) -> dict[str, float]:
  """One law's loss error per decade as a line in the log compute of the largest budget each
  pair's law was fitted on: its value at `c_last` (`bias_per_decade`), its slope per decade of
  that compute, the sd about it (`sd_per_decade`) and Student's 97.5% point for its degrees of
  freedom (`t`). A constant where the pairs have one origin, or too few for a line."""
  u = np.array([p["loss_error"] / p["decades"] for p in pairs])
  x = np.log10([p["c"] / 10 ** p["decades"] for p in pairs])
  line = len(np.unique(x)) >= 2 and len(u) >= 4
  slope, intercept = np.polyfit(x, u, 1) if line else (0.0, float(np.mean(u)))
  dof = len(u) - (2 if line else 1)
  scatter = u - (intercept + slope * x)
  sd = float(np.sqrt(np.sum(scatter**2) / dof)) if dof > 0 else float(np.abs(u).max())
  return {
    "bias_per_decade": float(intercept + slope * np.log10(c_last)),
    "slope": float(slope),
    "sd_per_decade": sd,
    "t": float(stats.t.ppf(0.975, max(dof, 1))),
  }


def summary(pairs: list[dict[str, Any]], c_last: float) -> dict[str, Any]:
  """One law's pairs: errors one budget ahead, at the furthest distance, by steps ahead and
  over all pairs, and its `calibration` at the table's largest compute `c_last`."""
  steps = sorted({p["steps_ahead"] for p in pairs})
  return {
    "one_ahead": _errors([p for p in pairs if p["steps_ahead"] == 1]),
    "furthest": _errors([p for p in pairs if p["steps_ahead"] == steps[-1]]),
    "all": _errors(pairs),
    "by_steps": {str(s): _errors([p for p in pairs if p["steps_ahead"] == s]) for s in steps},
    "calibration": calibration(pairs, c_last),
  }


def backtest(table: forecasts.Table, names: tuple[str, ...] = forecasts.LAWS) -> dict[str, Any]:
  """The rolling-origin backtest of each law of `names` over the table's budgets: the pairs,
  each law's `summary` under `laws`, and `ranking`: the laws that predicted every pair, best
  (least mean |loss error|) first. `error` instead where the table has fewer than
  MIN_ORIGIN + 1 budgets."""
  budgets = np.unique(table.budget)
  if len(budgets) <= MIN_ORIGIN:
    return {
      "error": f"{len(budgets)} budgets: a backtest fits on >= {MIN_ORIGIN} and predicts a "
      "larger one"
    }
  pairs, failed = _pairs(table, names)
  expected = sum(len(budgets) - k for k in range(MIN_ORIGIN, len(budgets)))
  by_law = {law: [p for p in pairs if p["law"] == law] for law in names}
  complete = [law for law, own in by_law.items() if len(own) == expected]
  c_last = max(table.budget_compute().values())
  summaries = {law: summary(own, c_last) for law, own in by_law.items() if own}
  return {
    "min_origin": MIN_ORIGIN,
    "laws": summaries,
    "ranking": sorted(complete, key=lambda law: summaries[law]["all"]["loss_mean_abs"]),
    "failed": failed,
    "pairs": pairs,
  }


def half_widths(calibrated: dict[str, float] | None, decades: float) -> tuple[float, float]:
  """The relative (lower, upper) half-widths a backtest's `calibration` gives a forecast
  `decades` beyond the table (none within it, or without a calibration)."""
  if not calibrated or decades <= 0:
    return 0.0, 0.0
  spread = calibrated["t"] * calibrated["sd_per_decade"] * decades
  bias = calibrated["bias_per_decade"] * decades  # < 0: the law forecast too low
  return spread + max(bias, 0.0), spread + max(-bias, 0.0)


def forecast(
  table: forecasts.Table,
  law: str,
  c: float,
  calibrated: dict[str, float] | None = None,
  sigma: float = 0.0,
  num_boot: int = 200,
  seed: int = 0,
) -> dict[str, Any]:
  """`law`'s optimal N, D and loss at compute `c` with 95% intervals: `<key>_ci` over bootstrap
  refits (runs resampled within budgets), and for the loss the calibrated `loss_ci`: on each
  side the widest of the bootstrap's, the backtest's at c's distance beyond the table
  (`calibrated`: the law's `calibration`) and the seed noise's (`sigma`, relative). N is
  counted as the law counts it (`params`). Raises ValueError where the law cannot be fitted
  or its fit forecasts no finite, positive N_opt, D_opt and loss (a degenerate Approach 3)."""
  full = forecasts.fit_law(law, table)
  at_c = _at(full, c)
  if not all(0 < v < np.inf for v in at_c.values()):
    why = laws.degenerate(full.fit) if full.parametric else []
    raise ValueError(
      f"fitted on this table, it forecasts no optimum at C = {c:.4g} "
      f"({'; '.join(why) or ', '.join(f'{k} {v:.4g}' for k, v in at_c.items())})"
    )
  boot = laws.bootstrap(
    table, lambda q: _at(forecasts.fit_law(law, q, start=full), c), KEYS, num_boot, seed
  )
  out: dict[str, Any] = {"law": law, "params": full.params, "flops": float(c)}
  for key, value in at_c.items():
    out |= {key: value, f"{key}_ci": boot.get(key)}
  loss = out["loss"]
  decades = float(np.log10(c / max(table.budget_compute().values())))
  spread = [1 - boot["loss"][0] / loss, boot["loss"][1] / loss - 1] if "loss" in boot else [0, 0]
  backtested = half_widths(calibrated, decades)
  lower, upper = (max(s, b, Z95 * sigma) for s, b in zip(spread, backtested))
  out |= {
    "loss_ci_bootstrap": boot.get("loss"),
    "loss_ci": [loss * (1 - lower), loss * (1 + upper)],
    "calibration": {
      "decades_beyond": decades,
      "backtest": calibrated,
      "sigma": sigma,
      "half_widths_backtest": list(backtested),
      "half_width_seed_noise": Z95 * sigma,
      "bootstrap_spread": spread,
    },
    "formula": forecasts.describe(full),
    "fit": full.fit,
  }
  return out
