"""When not to trust a scaling fit: checks on a `laws.fit_all` report and the warnings they raise.

The backtest (lm/scaling/backtest.py): how far each law's forecasts of the study's own larger
budgets missed. Variable projection: Approach 3 fitted a second way. Warnings: a table of one
budget, budgets Approach 2 left out, a best law that missed the next budget by more than
`BACKTEST_TOL`, a law whose forecasts missed by more than `BIAS_TOL` on average in one
direction, the two Approach 3 fits apart, approaches whose intervals for a or b do not overlap,
an interval wider than `MAX_WIDTH`, a bootstrap that could refit few of its resamples, an
Approach 3 law that is degenerate (`laws.degenerate`; by variable projection, an exponent at an
end of its search too).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from lm.scaling import laws

BACKTEST_TOL = 0.01  # mean |loss error| one budget ahead; published studies reach < 1%
BIAS_TOL = 0.02  # |mean signed loss error| over every backtest pair: the law is biased
N_OPT_TOL = 0.3  # mean |N_opt error| one budget ahead; IsoFLOP minima are this uncertain
VP_TOL = 0.05  # |a_vp - a_lbfgs|: the same law fitted two ways should agree well within this
MAX_WIDTH = 0.2  # a 95% interval for a or b wider than this says little about the exponent
MIN_BOOT_FRACTION = 0.9  # of the bootstrap resamples that could be refitted


def _intervals(report: dict[str, Any], key: str) -> dict[str, list[float]]:
  return {
    name: report[name]["ci"][key]
    for name in ("approach1", "approach2", "approach3")
    if key in report.get(name, {}).get("ci", {})
  }


def _backtest_warnings(backtest: dict[str, Any]) -> list[str]:
  """A backtest's error, its best law's misses one budget ahead, and every biased law."""
  if "error" in backtest:
    return [f"backtest: {backtest['error']}"]
  out = []
  if backtest.get("ranking"):
    best = backtest["ranking"][0]
    one = backtest["laws"][best]["one_ahead"]
    if one["loss_mean_abs"] > BACKTEST_TOL:
      out.append(
        f"backtest: the best law, {best}, missed the next budget's optimal loss by "
        f"{one['loss_mean_abs']:.1%} on average (tolerance {BACKTEST_TOL:.0%})"
      )
    if one["n_opt_mean_abs"] > N_OPT_TOL:
      out.append(
        f"backtest: the best law, {best}, missed the next budget's N_opt by "
        f"{one['n_opt_mean_abs']:.0%} on average (tolerance {N_OPT_TOL:.0%})"
      )
  for law, summary in backtest.get("laws", {}).items():
    bias = summary["all"]["loss_mean_signed"]
    if abs(bias) > BIAS_TOL:
      out.append(
        f"backtest: {law} forecast the optimal loss {bias:+.1%} off on average over "
        f"{summary['all']['pairs']} pairs ({'too high' if bias > 0 else 'too low'}): it is "
        "biased at this scale"
      )
  return out


def _degenerate_warnings(report: dict[str, Any]) -> list[str]:
  """A line per Approach 3 fit whose law is degenerate, naming each parameter that makes it so."""
  out = []
  ends = laws.VP_EXPONENTS[0], laws.VP_EXPONENTS[-1]
  for name in ("approach3", "approach3_vp"):
    fit = report.get(name, {})
    if "alpha" not in fit:
      continue
    reasons = laws.degenerate(fit)
    if name == "approach3_vp":
      reasons += [
        f"{key} = {fit[key]:.3g}, at an end of its search [{ends[0]:g}, {ends[1]:g}]"
        for key in ("alpha", "beta")
        if np.isclose(fit[key], ends).any()
      ]
    if reasons:
      out.append(
        f"{name} is degenerate ({'; '.join(reasons)}): its a, b, optimum and forecasts mean "
        "nothing; more budgets or sizes, or a table with less noise, are needed"
      )
  return out


def warnings(report: dict[str, Any]) -> list[str]:
  """Why not to trust the fit in `report` (with `backtest` and `approach3_vp` where run)."""
  out = []
  for name in ("approach1", "approach2", "approach3"):
    fit = report.get(name, {})
    if "error" in fit:
      out.append(f"{name} failed: {fit['error']}")
      continue
    ci = fit.get("ci", {})
    if ci.get("num_tried") and ci["num_ok"] < MIN_BOOT_FRACTION * ci["num_tried"]:
      out.append(
        f"{name}: {ci['num_ok']} of {ci['num_tried']} bootstrap resamples could be "
        "refitted; the intervals describe those"
      )
    for key in ("a", "b"):
      if key in ci and ci[key][1] - ci[key][0] > MAX_WIDTH:
        out.append(
          f"{name}: the 95% interval of {key} [{ci[key][0]:.3g}, {ci[key][1]:.3g}] is "
          f"wider than {MAX_WIDTH}"
        )
  for s in report.get("approach2", {}).get("skipped", []):
    out.append(f"approach2 left out budget {s['budget']:.3g}: {s['reason']}")
  for key in ("a", "b"):
    for (n1, (lo1, hi1)), (n2, (lo2, hi2)) in itertools.combinations(
      _intervals(report, key).items(), 2
    ):
      if lo1 > hi2 or lo2 > hi1:
        out.append(
          f"{key}: the 95% intervals of {n1} [{lo1:.3g}, {hi1:.3g}] and {n2} "
          f"[{lo2:.3g}, {hi2:.3g}] do not overlap"
        )
  out += _backtest_warnings(report.get("backtest", {}))
  vp, fit3 = report.get("approach3_vp", {}), report.get("approach3", {})
  if "a" in vp and "a" in fit3 and abs(vp["a"] - fit3["a"]) > VP_TOL:
    out.append(
      f"approach3: variable projection gives a = {vp['a']:.3g}, L-BFGS {fit3['a']:.3g} "
      f"(apart by more than {VP_TOL})"
    )
  return out + _degenerate_warnings(report)


def diagnose(final: laws.Points, report: dict[str, Any]) -> dict[str, Any]:
  """Adds `approach3_vp` and `warnings` (of the `backtest` too, where the report has one) to
  `report`; returns it."""
  try:
    report["approach3_vp"] = laws.approach3_vp(final)
  except ValueError as e:
    report["approach3_vp"] = {"error": str(e)}
  report["warnings"] = warnings(report)
  budgets = np.unique(final.budget)
  if len(budgets) < 2:
    report["warnings"].insert(
      0,
      f"one budget ({budgets[0]:.3g}): Approach 3 is fitted along one compute only, so its "
      "exponents and a prediction at another compute are unchecked",
    )
  return report


def format_diagnostics(report: dict[str, Any]) -> str:
  """The variable-projection fit and the warnings, as lines."""
  lines = []
  vp = report["approach3_vp"]
  lines.append(
    "approach3 by variable projection: "
    + (
      vp["error"]
      if "error" in vp
      else ", ".join(f"{k} {vp[k]:.4g}" for k in ("E", "A", "B", "alpha", "beta", "a", "b"))
    )
  )
  warned = report["warnings"]
  lines.append(f"warnings ({len(warned)}):" if warned else "warnings: none")
  lines.extend(f"  {w}" for w in warned)
  return "\n".join(lines)
