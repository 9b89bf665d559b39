"""A fit's data: a results table (a sweep's CSV or JSONL, or any CSV with named columns) read
into `laws.Points`, and a sweep's logged loss curves read into points along each run.

A row is fitted only where every column the fit reads holds a positive, finite number
(`usable_rows`); the others are left out and named (`left_out_line`).

A published table keeps each run's metrics.jsonl beside it as `curves/<name>.jsonl`
(results/scaling_cpu/); where the sweep ran, a run's own workdir holds it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

from lm.scaling import laws


def budget_groups(c: np.ndarray, decimals: int = 1) -> np.ndarray:
  """IsoFLOP budgets for points without one: compute rounded to `decimals` in log10."""
  return 10.0 ** np.round(np.log10(c), decimals)


def read_table(path: str) -> list[dict[str, Any]]:
  """Rows of a CSV (with a header) or JSONL results table; ValueError naming the file where it
  has no rows or a line of a JSONL table is not JSON."""
  with open(path) as f:
    if path.endswith(".jsonl"):
      rows = []
      for number, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError as e:
          raise ValueError(f"{path}: line {number} is not valid JSON ({e})") from e
    else:
      rows = list(csv.DictReader(f))
  if not rows:
    raise ValueError(f"{path} has no rows")
  return rows


def canonical_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """`rows` sorted by name (then by their whole contents): the same rows in any order, e.g. as
  runs finished on workers or a cluster, give the same list, so the same fit and bootstrap."""
  return sorted(rows, key=lambda r: (str(r.get("name", "")), json.dumps(r, sort_keys=True)))


MAX_NAMED = 10  # rows named in a line; fit.json's `left_out` lists every one


def positive(value: Any) -> float | None:
  """`value` as a positive, finite number, else None."""
  try:
    x = float(value)
  except (TypeError, ValueError):
    return None
  return x if math.isfinite(x) and x > 0 else None


def usable_rows(
  rows: list[dict[str, Any]], columns: dict[str, str], source: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
  """The rows whose `columns` (what each is, e.g. its flag -> its name) all hold positive,
  finite numbers, and the others as {row (1-based), name, why}.

  Raises ValueError naming `source` where no row has one of the columns (with the columns
  the table has) or no row is usable.
  """
  present = list(dict.fromkeys(key for row in rows for key in row))
  for what, column in columns.items():
    if column not in present:
      raise ValueError(
        f"{source} has no column {column!r} ({what}); its columns: " + ", ".join(present)
      )
  kept, left_out = [], []
  for number, row in enumerate(rows, 1):
    bad = [
      f"{c} {'empty' if row.get(c) in (None, '') else row[c]}"
      for c in columns.values()
      if positive(row.get(c)) is None
    ]
    if bad:
      left_out.append({"row": number, "name": row.get("name"), "why": ", ".join(bad)})
    else:
      kept.append(row)
  if not kept:
    raise ValueError(
      f"{source}: none of its {len(rows)} rows can be fitted "
      f"({_needs(columns)}): {_named(left_out)}"
    )
  return kept, left_out


def _needs(columns: dict[str, str]) -> str:
  return "each needs " + ", ".join(dict.fromkeys(columns.values())) + " positive and finite"


def _named(left_out: list[dict[str, Any]]) -> str:
  """The first `MAX_NAMED` rows left out and why, and how many more."""
  named = [
    f"row {r['row']}" + (f" ({r['name']})" if r["name"] else "") + f" {r['why']}"
    for r in left_out[:MAX_NAMED]
  ]
  more = len(left_out) - MAX_NAMED
  return "; ".join(named) + (f"; and {more} more" if more > 0 else "")


def left_out_line(
  source: str, left_out: list[dict[str, Any]], num_rows: int, columns: dict[str, str]
) -> str:
  """One warning line naming the rows `usable_rows` left out of `source`'s `num_rows`."""
  return (
    f"warning: {source}: {len(left_out)} of {num_rows} rows left out of the fit "
    f"({_needs(columns)}): {_named(left_out)}"
  )


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
  """Every logged training loss of the sweep's runs (their metrics.jsonl) as points; a loss
  that is not positive and finite (a run that diverged) is left out."""
  parts = []
  for i, row in enumerate(rows):
    per_token = final.c[i] / final.d[i]
    tokens_per_step = float(row["tokens"]) / float(row["steps"])
    path = curve_path(results_dir, row)
    if not os.path.exists(path):
      raise ValueError(
        f"{path}: no such file, the logged curve of run {row['name']} (a table moved away from "
        f"its runs?): --nocurves fits without the curves, or keep each curve beside the table "
        f"as {os.path.join(results_dir, 'curves', row['name'] + '.jsonl')}"
      )
    with open(path) as f:
      logged = [(r["step"], r["loss"]) for r in map(json.loads, f) if positive(r.get("loss"))]
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
