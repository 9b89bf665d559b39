"""Task accuracy against compute and against loss, from a results table's task columns
(`task_<task>_<metric>`, lm/scaling/sweep_tasks.py): Llama 3's two steps of predicting a task
from compute, compute to loss and loss to accuracy.

`task_points` gathers, per task metric, each run's compute, loss and score, with each budget's
IsoFLOP minimum (its run of the lowest loss) marked; fit.json keeps them under `tasks`.
`tasks_plot` draws them (tasks.png): a row per task metric, its score against C and against
the loss, with the task's chance accuracy as a line where its metadata gives it.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from lm.scaling import laws, plots, results

CHANCE = "chance"  # the suffix of a task's chance column: task_<task>_chance
STDERR = "_stderr"  # the suffix of a metric's standard error column


def _score(row: dict[str, Any], column: str) -> float | None:
  """The row's value of `column` as a finite number, else None (empty, absent)."""
  try:
    value = float(row.get(column, ""))
  except (TypeError, ValueError):
    return None
  return value if math.isfinite(value) else None


def task_columns(rows: list[dict[str, Any]]) -> list[str]:
  """The task metric columns any row has (chance and standard errors aside), in table order."""
  present = dict.fromkeys(k for row in rows for k in row if k.startswith(results.TASK_PREFIX))
  return [k for k in present if not k.endswith((f"_{CHANCE}", STDERR))]


def _chance_of(rows: list[dict[str, Any]], column: str) -> float | None:
  """The chance accuracy of `column`'s task: the `task_<task>_chance` column whose task the
  column's name starts with (the longest such), where a row has it."""
  chances = [k for k in dict.fromkeys(k for row in rows for k in row) if k.endswith(f"_{CHANCE}")]
  owners = [k for k in chances if column.startswith(k.removesuffix(CHANCE))]
  if not owners:
    return None
  found = [_score(row, max(owners, key=len)) for row in rows]
  return next((c for c in found if c is not None), None)


def task_points(rows: list[dict[str, Any]], final: laws.Points) -> list[dict[str, Any]]:
  """Per task metric column of `rows` (the fitted rows, `final` their points): the column,
  its chance accuracy (or None), and each run with a score: name, budget, flops, loss, score,
  its standard error (or None), and whether it is its budget's IsoFLOP minimum (lowest
  loss)."""
  minima = {
    int(np.flatnonzero(final.budget == b)[np.argmin(final.loss[final.budget == b])])
    for b in np.unique(final.budget)
  }
  out = []
  for column in task_columns(rows):
    points = [
      {
        "name": row.get("name", str(i)),
        "budget": float(final.budget[i]),
        "flops": float(final.c[i]),
        "loss": float(final.loss[i]),
        "score": score,
        "stderr": _score(row, column + STDERR),
        "isoflop_minimum": i in minima,
      }
      for i, row in enumerate(rows)
      if (score := _score(row, column)) is not None
    ]
    if points:
      out.append({"column": column, "chance": _chance_of(rows, column), "points": points})
  return out


def _panel(ax, task: dict[str, Any], x: str, color) -> None:
  """One panel: the task's scores against `x` ('flops' or 'loss') with their standard errors,
  minima as stars."""
  for p in task["points"]:
    star = p["isoflop_minimum"]
    if p["stderr"]:
      ax.errorbar(p[x], p["score"], yerr=p["stderr"], color=color(p["budget"]), alpha=0.4)
    ax.scatter(
      [p[x]],
      [p["score"]],
      color=color(p["budget"]),
      marker="*" if star else "o",
      s=120 if star else 20,
      edgecolor="k" if star else "none",
      zorder=3 if star else 2,
    )
  if task["chance"] is not None:
    ax.axhline(task["chance"], color="0.5", linestyle="--", label="chance")
    ax.legend(fontsize=8)


def tasks_plot(tasks: list[dict[str, Any]], path: str, labels: plots.Labels) -> str:
  """tasks.png: per task metric (`task_points`), its score (+- a standard error) against C and
  against the final loss, runs coloured by budget, each budget's IsoFLOP minimum a star."""
  fig, axes = plt.subplots(
    len(tasks), 2, figsize=(11, 3.6 * len(tasks)), layout="constrained", squeeze=False
  )
  budgets = [p["budget"] for task in tasks for p in task["points"]]
  color = plots.budget_colors(fig, axes[:, 1], budgets, f"budget: {labels.c}")
  for (by_c, by_loss), task in zip(axes, tasks):
    metric = task["column"].removeprefix(results.TASK_PREFIX)
    _panel(by_c, task, "flops", color)
    by_c.set(xscale="log", xlabel=labels.c, ylabel=metric)
    plots.log_axis(by_c.xaxis, [p["flops"] for p in task["points"]])
    by_c.set_title(f"{metric} against compute (stars: IsoFLOP minima)", fontsize=10)
    _panel(by_loss, task, "loss", color)
    by_loss.set(xlabel="final loss", ylabel=metric)
    by_loss.set_title(f"{metric} against loss", fontsize=10)
  return plots.save(fig, path)
