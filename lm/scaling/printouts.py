"""A scaling fit's report (`laws.fit_all`) and prediction (`laws.predict_at`) as printed lines."""

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


def format_prediction(pred: dict[str, Any]) -> str:
  """The prediction of `predict_at`, a line per approach."""

  def part(r: dict[str, Any], key: str, label: str) -> str:
    ci = r[f"{key}_ci"]
    return f"{label} {r[key]:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")

  lines = [
    f"prediction at C = {pred['flops']:.4g} FLOPs (95% intervals):",
    "approach3  "
    + ", ".join(
      part(pred, k, label)
      for k, label in (("n_opt", "N_opt"), ("d_opt", "D_opt"), ("loss", "loss"))
    ),
  ]
  fit2 = pred["approach2"]
  lines.append(
    "approach2  "
    + (
      fit2["error"]
      if "error" in fit2
      else ", ".join(part(fit2, k, label) for k, label in (("n_opt", "N_opt"), ("d_opt", "D_opt")))
    )
  )
  return "\n".join(lines)
