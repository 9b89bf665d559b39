"""A scaling fit's report (`laws.fit_all`), its backtest and its prediction
(lm/scaling/backtest.py) as printed lines."""

from __future__ import annotations

from typing import Any


def format_table(report: dict[str, Any]) -> str:
  """The fitted numbers with their 95% intervals, one per line."""
  lines = [
    f"{'approach':<10} {'quantity':<17} {'estimate':>11}   95% interval",
    f"(tokens_per_param at C = {report['ref_flops']:.3g} FLOPs; {report['num_runs']} runs)",
  ]
  for name in ("approach1", "approach2", "approach3"):
    fit = report.get(name, {})
    if "error" in fit:
      lines.append(f"{name:<10} {fit['error']}")
      continue
    for key, (lo, hi) in (
      (k, v) for k, v in fit["ci"].items() if isinstance(v, list) and not k.startswith("log_")
    ):
      lines.append(f"{name:<10} {key:<17} {fit[key]:>11.4g}   [{lo:.4g}, {hi:.4g}]")
    if "cost" in fit:
      lines.append(
        f"{name:<10} optimum along C = {fit['cost']['coef']:.4g} "
        f"N^{1 + fit['cost']['exponent']:.4g} D (the table's C, fitted on its rows)"
      )
  return "\n".join(lines)


def format_seed_noise(noise: dict[str, Any]) -> str:
  """The seed noise `noise.seed_noise` measured, in a line."""
  last = noise["at_largest_budget"]
  return (
    f"seed noise: sigma {noise['sigma']:.2%} of the loss (pooled sd of log loss over "
    f"{noise['num_groups']} points run with several seeds, {noise['dof']} degrees of freedom); "
    f"at the largest budget repeated ({last['budget']:.3g}): {last['sigma']:.2%} over "
    f"{last['num_groups']} points, {last['dof']} degrees of freedom (a forecast's floor)"
  )


def format_backtest(backtest: dict[str, Any]) -> str:
  """Each law's backtest errors in a table, best first, and the fits that failed."""
  if "error" in backtest:
    return f"backtest: {backtest['error']}"
  laws_ = backtest["laws"]
  order = backtest["ranking"] + [law for law in laws_ if law not in backtest["ranking"]]
  pairs = backtest["pairs"]
  if not pairs:
    return "\n".join(
      [f"backtest ({backtest['trim']}): no law forecast any budget"]
      + [f"  {f['law']} on {f['origin']} budgets failed: {f['error']}" for f in backtest["failed"]]
    )
  steps = max(p["steps_ahead"] for p in pairs)
  first, last = backtest["min_origin"], max(p["origin"] for p in pairs)
  origins = f"{first}" if first == last else f"{first} to {last}"
  furthest = f"{f'{steps} ahead':>16} " if steps > 1 else ""
  lines = [
    f"backtest ({backtest['trim']}): each law fitted on the {origins} smallest of this trim's "
    "budgets predicts every larger one's optimal loss (relative errors, forecast / measured - 1: "
    "+ = forecast too high)",
    f"{'law':<17} {'one ahead':>16} {furthest}{'all pairs':>16} "
    f"{'bias/decade':>12} {'N_opt 1 ahead':>13}",
  ]

  def cell(e: dict[str, Any]) -> str:
    return f"{e['loss_mean_abs']:>7.2%} {e['loss_mean_signed']:>+8.2%}"

  for law in order:
    s = laws_[law]
    rank = "" if law in backtest["ranking"] else " (not every pair)"
    far = f"{cell(s['furthest'])} " if steps > 1 else ""
    lines.append(
      f"{law:<17} {cell(s['one_ahead'])} {far}{cell(s['all'])} "
      f"{s['calibration']['bias_per_decade']:>+12.2%} "
      f"{s['one_ahead']['n_opt_mean_abs']:>13.1%}{rank}"
    )
  lines.append(
    "(each cell: mean |error|, mean signed error; bias/decade: the error per decade of distance "
    "at the largest budget, from a line through every pair's)"
  )
  lines += [
    f"  {f['law']} on {f['origin']} budgets failed: {f['error']}" for f in backtest["failed"]
  ]
  trims = backtest.get("trims")
  if trims:
    lines.append(
      f"trims, by mean |loss error| on the {trims['common_pairs']} pairs every trim predicted "
      f"(chosen: {backtest['trim']}):"
    )
    for name, scores in trims.items():
      if name != "common_pairs":
        errors = ", ".join(f"{law} {e:.2%}" for law, e in scores.items() if law != "error")
        lines.append(f"  {name:<28} {scores.get('error', errors)}")
  return "\n".join(lines)


def format_prediction(pred: dict[str, Any]) -> str:
  """The prediction of `selection.predict`: its law, N_opt, D_opt and loss with 95% intervals,
  and what the loss interval is made of."""

  def part(key: str, label: str) -> str:
    ci = pred[f"{key}_ci"]
    return f"{label} {pred[key]:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")

  n_label = "N_opt (every parameter)" if pred["params"] == "total" else "N_opt"
  return "\n".join(
    [
      f"prediction at C = {pred['flops']:.4g} FLOPs by {pred['law']} on {pred['trim']} "
      f"({pred['chosen']}): {pred['formula']}",
      "  " + ", ".join(part(k, label) for k, label in (("n_opt", n_label), ("d_opt", "D_opt"))),
      "  " + part("loss", "loss") + f" (95%; bootstrap alone {_span(pred['loss_ci_bootstrap'])})",
      "  the loss interval, each side the widest of " + _interval_parts(pred),
      *_spread_line(pred.get("seed_noise_spread")),
    ]
  )


def _spread_line(spread: dict[str, Any] | None) -> list[str]:
  """How far seed noise alone moves the forecast (`noise.forecast_spread`), as a line."""
  if not spread:
    return []
  if spread["sd"] is None:
    return [f"  seed noise alone: {spread['draws_ok']} of {spread['draws']} redraws refitted"]
  return [
    f"  seed noise alone moves this forecast by sd {spread['sd']:.2%} "
    f"({_span(spread['loss_range'])} over {spread['draws_ok']} redraws of the table at each "
    "budget's measured sigma): misses of that size are what seed noise alone gives"
  ]


def _interval_parts(pred: dict[str, Any]) -> str:
  """What a prediction's loss interval is the widest of, in words."""
  cal = pred["calibration"]
  back, bt = cal["half_widths_backtest"], cal["backtest"]
  parts = ["the bootstrap's"]
  if bt:
    parts.append(
      f"the backtest's -{back[0]:.2%}/+{back[1]:.2%} ({cal['decades_beyond']:.2f} decades "
      f"beyond the table; bias {bt['bias_per_decade']:+.2%} and sd {bt['sd_per_decade']:.2%} "
      "per decade)"
    )
  else:
    parts.append("(not backtested: no backtest error widens it)")
  if cal["sigma"]:
    parts.append(f"the seed noise's +-{cal['half_width_seed_noise']:.2%}")
  else:
    parts.append("(no seed repeats: no seed-noise floor)")
  return ", ".join(parts)


def _span(ci: list[float] | None) -> str:
  return f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "none"


def format_tasks(tasks: list[dict[str, Any]]) -> str:
  """Per task metric (lm/scaling/task_plots.py's `task_points`): its runs' range and each
  budget's IsoFLOP minimum's score, one line a metric."""
  lines = []
  for task in tasks:
    scores = [p["score"] for p in task["points"]]
    minima = ", ".join(
      f"{p['budget']:.3g}: {p['score']:.3f}" for p in task["points"] if p["isoflop_minimum"]
    )
    chance = "" if task["chance"] is None else f" (chance {task['chance']:.3g})"
    lines.append(
      f"{task['column']}: {len(scores)} runs, {min(scores):.3f} to {max(scores):.3f}{chance}; "
      f"IsoFLOP minima by budget: {minima}"
    )
  return "\n".join(lines)
