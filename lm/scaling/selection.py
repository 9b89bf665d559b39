"""What makes a forecast: the data and the law the backtest (lm/scaling/backtest.py) says
predicted best, and the prediction they make.

Trims: the table as it is, without its smallest budget (its shortest runs) and without its two
smallest sizes (at small widths the embedding and head are most of a model, and the runs least
like the ones forecast). Each trim is backtested with every law; a (trim, law) is scored by its
mean |loss error| over the pairs every trim predicted (the same largest budget fitted, the same
budget predicted), and the best makes the prediction; a trim must beat the whole table's best by
10% to be chosen (data are dropped only where the backtest says so). Twelve candidates chosen on
a handful of pairs flatter the winner a little: its calibration comes from its own pairs, not
from the score.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lm.scaling import backtest, forecasts, noise

EVERY_RUN = "every run"
TRIM_MARGIN = 0.9  # a trim is chosen only where it predicted this much better than every run
TRIMS = (EVERY_RUN, "without the smallest budget", "without the 2 smallest sizes")


def trimmed(table: forecasts.Table) -> dict[str, forecasts.Table]:
  """The table under each trim of `TRIMS` that leaves enough to backtest."""
  budgets, sizes = np.unique(table.budget), np.unique(table.final.n)
  out = {EVERY_RUN: table}
  if len(budgets) > backtest.MIN_ORIGIN + 1:
    out[TRIMS[1]] = table.take(table.budget > budgets[0])
  if len(sizes) > 2:
    out[TRIMS[2]] = table.take(table.final.n > sizes[1])
  return out


def _key(pair: dict[str, Any]) -> tuple[float, float]:
  return pair["fitted_up_to"], pair["budget"]


def select(table: forecasts.Table) -> dict[str, Any]:
  """The backtest of the best trim (`backtest.backtest`'s answer) with `trim`, its name, and
  `trims`: per trim its error or per ranked law its mean |loss error| on the common pairs
  (`common_pairs` of them), best first. Where no trim can be backtested, the whole table's
  backtest error."""
  tables = trimmed(table)
  runs = {name: backtest.backtest(t) for name, t in tables.items()}
  ok = {name: r for name, r in runs.items() if r.get("ranking")}
  if not ok:
    return {**runs[EVERY_RUN], "trim": EVERY_RUN}
  common = set.intersection(*({_key(p) for p in r["pairs"]} for r in ok.values()))
  scores = {
    name: {
      law: float(
        np.mean([abs(p["loss_error"]) for p in r["pairs"] if p["law"] == law and _key(p) in common])
      )
      for law in r["ranking"]
    }
    for name, r in ok.items()
  }
  candidates = [(n, law) for n in scores for law in scores[n]]
  if EVERY_RUN in scores:
    bar = TRIM_MARGIN * min(scores[EVERY_RUN].values())
    candidates = [(n, law) for n, law in candidates if n == EVERY_RUN or scores[n][law] < bar]
  best = min(candidates, key=lambda x: scores[x[0]][x[1]])
  chosen = runs[best[0]]
  ranking = [best[1], *(law for law in chosen["ranking"] if law != best[1])]
  return {
    **chosen,
    "ranking": ranking,
    "trim": best[0],
    "trims": {
      "common_pairs": len(common),
      **{n: {"error": r["error"]} for n, r in runs.items() if "error" in r},
      **{n: dict(sorted(s.items(), key=lambda kv: kv[1])) for n, s in scores.items()},
    },
  }


def choose_law(report: dict[str, Any], law: str | None = None) -> tuple[str, str]:
  """The law a prediction uses and why: `law` where given, else the backtest's first
  (`report["backtest"]`, `select`'s), else Approach 3's `chinchilla` where nothing was
  backtested."""
  if law:
    if law not in forecasts.LAWS:
      raise ValueError(f"unknown law {law!r}; known: {', '.join(forecasts.LAWS)}")
    return law, "asked for"
  ranking = report.get("backtest", {}).get("ranking")
  if ranking:
    return ranking[0], "ranked first by the backtest"
  why = report.get("backtest", {}).get("error", "no law predicted every backtest pair")
  return "chinchilla", f"Approach 3, as nothing was backtested ({why})"


def predict(
  table: forecasts.Table,
  report: dict[str, Any],
  c: float,
  law: str | None = None,
  num_boot: int = 200,
  seed: int = 0,
) -> dict[str, Any]:
  """The forecast at compute `c` (`backtest.forecast`) of `choose_law`'s law on the backtest's
  trim of `table`, calibrated by its backtest errors there and floored by the study's seed
  noise at its largest repeated budget (`report["seed_noise"]["at_largest_budget"]`, where
  measured), with `seed_noise_spread` where the study measured its seed noise: how far that
  noise alone moves the forecast (`noise.forecast_spread`, `num_boot` redraws). Where the
  backtest's choice forecasts nothing on the whole trim (a degenerate Approach 3), the next law
  of its ranking does, and `chosen` says why; ValueError where no law can."""
  name, why = choose_law(report, law)
  bt = report.get("backtest", {})
  trim = bt.get("trim", EVERY_RUN)
  measured = report.get("seed_noise") or {}
  sigma = measured.get("at_largest_budget", measured).get("sigma", 0.0)
  data = trimmed(table)[trim]
  candidates = [name] if law else [name, *(x for x in bt.get("ranking", []) if x != name)]
  failed = []
  for candidate in candidates:
    calibration = bt.get("laws", {}).get(candidate, {}).get("calibration")
    try:
      out = backtest.forecast(data, candidate, c, calibration, sigma, num_boot, seed)
    except ValueError as e:
      failed.append(f"{candidate}: {e}")
      continue
    if failed:
      why = f"ranked {len(failed) + 1} by the backtest, as " + "; ".join(failed)
    if measured:
      out["seed_noise_spread"] = noise.forecast_spread(data, candidate, c, measured, num_boot, seed)
    return {**out, "chosen": why, "trim": trim}
  raise ValueError("; ".join(failed))
