"""When not to trust a scaling fit: checks on a `laws.fit_all` report and the warnings they raise.

Leave-one-budget-out: refit without the largest budget and compare what the refit predicts
there with what that budget measured. Variable projection: Approach 3 fitted a second way.
Warnings: a table of one budget, budgets Approach 2 left out, a large leave-one-out error, the
two Approach 3 fits apart, approaches whose intervals for a or b do not overlap, an interval
wider than `MAX_WIDTH`, a bootstrap that could refit few of its resamples.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from lm.scaling import laws

LOO_N_TOL = 0.3  # |N_opt predicted / N_opt measured - 1|; IsoFLOP minima are this uncertain
LOO_LOSS_TOL = 0.02  # |loss predicted / loss measured - 1|; budgets' optima differ by ~5-15%
VP_TOL = 0.05  # |a_vp - a_lbfgs|: the same law fitted two ways should agree well within this
MAX_WIDTH = 0.2  # a 95% interval for a or b wider than this says little about the exponent
MIN_BOOT_FRACTION = 0.9  # of the bootstrap resamples that could be refitted


def _reference(final: laws.Points, fit2: dict[str, Any], budget: float) -> dict[str, Any]:
  """A budget's measured optimum: its Approach 2 parabola minimum, else its best run."""
  for row in fit2.get("budgets", []):
    if row["budget"] == budget:
      return {"n_opt": row["n_opt"], "loss": row["loss_opt"], "source": "approach2 parabola"}
  g = final.take(final.budget == budget)
  i = int(np.argmin(g.loss))
  return {"n_opt": float(g.n[i]), "loss": float(g.loss[i]), "source": "best run"}


def leave_one_out(final: laws.Points, fit2: dict[str, Any]) -> dict[str, Any]:
  """Approaches 2 and 3 refitted without the largest budget, and their relative errors there.

  `fit2` is the full data's Approach 2 (its minima are the reference; an `error` dict is fine).
  """
  budgets = np.unique(final.budget)
  if len(budgets) < 3:
    return {"error": f"{len(budgets)} budgets: a refit without the largest needs >= 2 others"}
  budget = float(budgets[-1])
  rest = final.take(final.budget != budget)
  c = float(np.mean(final.c[final.budget == budget]))
  ref = _reference(final, fit2, budget)
  out: dict[str, Any] = {"budget": budget, "c": c, "reference": ref}
  try:
    fit3 = laws.approach3(rest)
  except ValueError as e:
    out["approach3"] = {"error": str(e)}
  else:
    n, d = laws.optimum3(fit3, c)
    loss = float(laws.predict(fit3, n, d))
    out["approach3"] = {
      "n_opt": n,
      "loss": loss,
      "n_opt_rel_error": n / ref["n_opt"] - 1,
      "loss_rel_error": loss / ref["loss"] - 1,
    }
  try:
    fit2_rest = laws.approach2(rest)
  except ValueError as e:
    out["approach2"] = {"error": str(e)}
  else:
    # Approach 2 has no law for the loss: only N_opt is extrapolated.
    n = float(np.exp(fit2_rest["log_n_coef"] + fit2_rest["a"] * np.log(c)))
    out["approach2"] = {"n_opt": n, "n_opt_rel_error": n / ref["n_opt"] - 1}
  return out


def _intervals(report: dict[str, Any], key: str) -> dict[str, list[float]]:
  return {
    name: report[name]["ci"][key]
    for name in ("approach1", "approach2", "approach3")
    if key in report.get(name, {}).get("ci", {})
  }


def warnings(report: dict[str, Any]) -> list[str]:
  """Why not to trust the fit in `report` (with `leave_one_out` and `approach3_vp` where run)."""
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
  loo = report.get("leave_one_out", {})
  for name in ("approach3", "approach2"):
    for key, tol in (("n_opt_rel_error", LOO_N_TOL), ("loss_rel_error", LOO_LOSS_TOL)):
      error = loo.get(name, {}).get(key)
      if error is not None and abs(error) > tol:
        out.append(
          f"leave-one-budget-out: {name} fitted without budget {loo['budget']:.3g} "
          f"predicts its {key.removesuffix('_rel_error')} {error:+.1%} off "
          f"(tolerance {tol:.0%})"
        )
  vp, fit3 = report.get("approach3_vp", {}), report.get("approach3", {})
  if "a" in vp and "a" in fit3 and abs(vp["a"] - fit3["a"]) > VP_TOL:
    out.append(
      f"approach3: variable projection gives a = {vp['a']:.3g}, L-BFGS {fit3['a']:.3g} "
      f"(apart by more than {VP_TOL})"
    )
  return out


def diagnose(final: laws.Points, report: dict[str, Any]) -> dict[str, Any]:
  """Adds `leave_one_out`, `approach3_vp` and `warnings` to `report`; returns it."""
  report["leave_one_out"] = leave_one_out(final, report.get("approach2", {}))
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
  """Leave-one-budget-out errors, the variable-projection fit and the warnings, as lines."""
  lines = []
  loo = report["leave_one_out"]
  if "error" in loo:
    lines.append(f"leave-one-budget-out: {loo['error']}")
  else:
    ref = loo["reference"]
    lines.append(
      f"leave-one-budget-out: fitted without budget {loo['budget']:.3g}, at its "
      f"C = {loo['c']:.4g} (measured, {ref['source']}: N_opt {ref['n_opt']:.4g}, "
      f"loss {ref['loss']:.4g})"
    )
    for name in ("approach3", "approach2"):
      refit = loo[name]
      lines.append(
        f"  {name:<10} "
        + (
          refit["error"]
          if "error" in refit
          else ", ".join(
            f"{label} {refit[key]:.4g} ({refit[f'{key}_rel_error']:+.1%})"
            for key, label in (("n_opt", "N_opt"), ("loss", "loss"))
            if key in refit
          )
        )
      )
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
