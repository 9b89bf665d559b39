"""A fit's data: a results table (a sweep's CSV or JSONL, or any CSV with named columns) read
into `laws.Points`, and a sweep's logged loss curves read into points along each run.

A published table keeps each run's metrics.jsonl beside it as `curves/<name>.jsonl`
(results/scaling_cpu/); where the sweep ran, a run's own workdir holds it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Any

import numpy as np

from lm.scaling import laws


def budget_groups(c: np.ndarray, decimals: int = 1) -> np.ndarray:
  """IsoFLOP budgets for points without one: compute rounded to `decimals` in log10."""
  return 10.0 ** np.round(np.log10(c), decimals)


def read_table(path: str) -> list[dict[str, Any]]:
  """Rows of a CSV (with a header) or JSONL results table."""
  with open(path) as f:
    if path.endswith(".jsonl"):
      return [json.loads(line) for line in f if line.strip()]
    return list(csv.DictReader(f))


def table_points(
  rows: list[dict[str, Any]],
  params_col: str,
  loss_col: str,
  tokens_col: str | None = None,
  flops_col: str | None = None,
  budget_col: str | None = None,
) -> laws.Points:
  """Final points from a table; D or C missing is derived from C = 6 N D."""
  if tokens_col is None and flops_col is None:
    raise ValueError("give a tokens column, a FLOPs column or both")

  def col(name):
    return np.array([float(r[name]) for r in rows])

  n, loss = col(params_col), col(loss_col)
  d = col(tokens_col) if tokens_col else col(flops_col) / (6 * n)
  c = col(flops_col) if flops_col else 6 * n * d
  budget = col(budget_col) if budget_col else budget_groups(c)
  return laws.Points(np.arange(len(rows)), n, d, c, loss, budget)


def curve_path(results_dir: str, row: dict[str, Any]) -> str:
  """A run's logged losses: `<results_dir>/<workdir>/metrics.jsonl` where the sweep ran, else
  the copy a published table keeps beside it in `curves/<name>.jsonl`."""
  path = os.path.join(results_dir, row["workdir"], "metrics.jsonl")
  copy = os.path.join(results_dir, "curves", f"{row['name']}.jsonl")
  return path if os.path.exists(path) or not os.path.exists(copy) else copy


def curve_points(rows: list[dict[str, Any]], results_dir: str, final: laws.Points) -> laws.Points:
  """Every logged training loss of the sweep's runs (their metrics.jsonl) as points."""
  parts = []
  for i, row in enumerate(rows):
    per_token = final.c[i] / final.d[i]
    tokens_per_step = float(row["tokens"]) / float(row["steps"])
    with open(curve_path(results_dir, row)) as f:
      logged = [(r["step"], r["loss"]) for r in map(json.loads, f) if "loss" in r]
    steps, loss = np.array(logged, float).T
    d = steps * tokens_per_step
    parts.append(
      laws.Points(
        np.full(len(d), i),
        np.full(len(d), final.n[i]),
        d,
        d * per_token,
        loss,
        np.full(len(d), final.budget[i]),
      )
    )
  return laws.Points(
    *(np.concatenate([getattr(q, f.name) for q in parts]) for f in dataclasses.fields(laws.Points))
  )
