"""Fit scaling laws (Chinchilla Approaches 1, 2, 3) to a sweep's results or a published table.

    python -m experiments.fit_scaling --results=runs/scaling/results.csv \\
        --out=runs/scaling/fit.json --plots_dir=runs/scaling/plots --predict_flops=3.2e13

N and C are counted as the sweep planned (the conventions in `sweep.json` beside the results:
e.g. `flops_6N+attn`), or as `--params_col` / `--flops_col` say. An external CSV: name its
columns, e.g. `--params_col=N --tokens_col=D --loss_col=loss`
(or `--flops_col=C`; the missing one follows from C = 6 N D).

After the table: the backtest (lm/scaling/backtest.py: each law of lm/scaling/forecasts.py
fitted on the smaller budgets predicts the larger ones, on the table and on it without its
smallest budget or sizes, lm/scaling/selection.py; fit.json `backtest`, backtest.png),
the diagnostics (`lm.scaling.diagnostics`: Approach 3 by variable projection, warnings), then
with `--predict_flops` the compute-optimal N, D and loss at that compute by the law and trim the
backtest ranks first (or `--law`), with 95% intervals, the loss's calibrated by the backtest's
errors at that distance (fit.json `prediction`); where the sweep has trained the predicted model
(`experiments.sweep --verify`, `verification.json` beside the results), its observed loss, N, D
and C against this fit's prediction at its compute (in fit.json under `verification`; the plots
mark it). A table with task columns (`experiments.sweep` with `scaling.eval_tasks`): each task
metric against compute and against the loss, the IsoFLOP minima marked (fit.json `tasks`,
tasks.png).

The report goes to `--out` (replacing what is there), else to fit.json beside the results unless
that file holds entries this fit lacks (`lm/scaling/report_file.py`: a fit without
`--predict_flops` keeps a committed `prediction`); a line says where it wrote, or why not. Each
plot not drawn is named with why (e.g. isoflop.png without an Approach 2 fit).

Rows whose N, D, C, loss or budget is not a positive, finite number are left out and named in
one warning line (and in fit.json under `rows_left_out`); an approach that cannot be fitted says
why in its place. A missing column, or a table with nothing to fit, ends in one `error:` line.
"""

import json
import os
import sys
from typing import Any

# The fits are many tiny L-BFGS problems: OpenBLAS threads only add synchronisation, which on a
# busy 2-core machine made each fit 60x slower. Set before numpy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from absl import flags

from lm import cli
from lm.scaling import (
  diagnostics,
  forecasts,
  grid,
  laws,
  lr_search,
  noise,
  plots,
  printouts,
  report_file,
  selection,
  tables,
  task_plots,
  verify,
)

_RESULTS = flags.DEFINE_string(
  "results", None, "results.csv / results.jsonl, or any CSV.", required=True
)
_OUT = flags.DEFINE_string(
  "out",
  None,
  "JSON report path, replaced if there (default: fit.json beside the results, written only "
  "where that holds nothing this fit lacks).",
)
_PLOTS = flags.DEFINE_string("plots_dir", None, "Write PNG plots here.")
_PARAMS = flags.DEFINE_string(
  "params_col",
  None,
  "Column of N (default: the sweep.json plan's params_<convention>, else params_non_embedding).",
)
_TOKENS = flags.DEFINE_string("tokens_col", "tokens", "Column of D ('' if absent).")
_FLOPS = flags.DEFINE_string(
  "flops_col",
  None,
  "Column of C ('' if absent; default: the sweep.json plan's flops_<convention>, else flops_6N).",
)
_LOSS = flags.DEFINE_string("loss_col", "eval_loss", "Column of the final loss.")
_BUDGET = flags.DEFINE_string(
  "budget_col", "budget", "Column of the IsoFLOP budget ('': group by log10 C)."
)
_CURVES = flags.DEFINE_bool(
  "curves",
  True,
  "Approach 1 on each run's metrics.jsonl curve (needs the table's `workdir` column).",
)
_REF = flags.DEFINE_float("ref_flops", None, "Compute for tokens per parameter (default: max).")
_BOOT = flags.DEFINE_integer("bootstrap", 200, "Bootstrap resamples.")
_PREDICT = flags.DEFINE_float(
  "predict_flops", None, "Predict N_opt, D_opt and the loss at this compute (counted as C is)."
)
_VERIFICATION = flags.DEFINE_string(
  "verification",
  None,
  "A verification.json to compare with this fit (default: the one beside the results, if any).",
)
_LAW = flags.DEFINE_enum(
  "law", None, list(forecasts.LAWS), "The law that predicts (default: the backtest's best)."
)


def _columns(results_dir: str) -> tuple[str, str, str]:
  """The N and C columns (the flags', else the plan's, else the defaults) and where from."""
  params, flops, source = "params_non_embedding", "flops_6N", "default"
  plan_path = os.path.join(results_dir, grid.PLAN_FILE)
  if os.path.exists(plan_path):
    plan = grid.load_plan(plan_path)
    params, flops = f"params_{plan['params_convention']}", f"flops_{plan['flops_convention']}"
    source = plan_path
  if _PARAMS.value is not None or _FLOPS.value is not None:
    source = "flags"
  return (
    params if _PARAMS.value is None else _PARAMS.value,
    flops if _FLOPS.value is None else _FLOPS.value,
    source,
  )


def _verification(results_dir: str, report: dict, table: forecasts.Table) -> dict | None:
  """A verification run (`--verification`, else `verification.json` beside the results, written
  by `experiments.sweep --verify`) against this fit's prediction at its compute, or None."""
  path = _VERIFICATION.value or os.path.join(results_dir, verify.FILE)
  if not os.path.exists(path):
    if _VERIFICATION.value:
      raise ValueError(f"--verification={path}: no such file")
    return None
  with open(path) as f:
    v = json.load(f)
  if v["columns"] != report["columns"]:
    print(f"{path}: not compared: it counts {v['columns']}, this fit {report['columns']}")
    return None
  c = v["predicted"]["flops"]
  try:
    same = report.get("prediction", {}).get("flops") == c
    prediction = report["prediction"] if same else _predict(table, report, c)
  except ValueError as e:
    print(f"{path}: not compared: {e}")
    return None
  return {**v, **verify.compare(prediction, v["row"], report["columns"], v.get("repeats", []))}


def _predict(table: forecasts.Table, report: dict, c: float) -> dict:
  return selection.predict(table, report, c, _LAW.value, _BOOT.value)


def _table(rows: list[dict[str, Any]], final: laws.Points) -> forecasts.Table:
  """The final points, with every parameter counted where every row has `params_total`."""
  total = [tables.positive(r.get("params_total")) for r in rows]
  if any(n is None for n in total):
    return forecasts.Table(final)
  return forecasts.Table(final, np.array(total, float))


def _usable_rows(
  path: str, rows: list[dict[str, Any]], columns: dict[str, str | None]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
  """The rows that can be fitted, after a warning line naming those left out, and what
  fit.json records of those (nothing where none was)."""
  named = {flag: column for flag, column in columns.items() if column}
  usable, left_out = tables.usable_rows(rows, named, path)
  if not left_out:
    return usable, {}
  print(tables.left_out_line(path, left_out, len(rows), named), file=sys.stderr)
  return usable, {"rows_left_out": left_out}


def _tasks(rows: list[dict[str, Any]], final, report: dict) -> list[dict[str, Any]]:
  """The table's task scores (a sweep with `scaling.eval_tasks`) by compute and loss, recorded
  in the report under `tasks` and printed; [] for a table without task columns."""
  tasks = task_plots.task_points(rows, final)
  if tasks:
    report["tasks"] = tasks
    print(printouts.format_tasks(tasks))
  return tasks


def main(argv):
  del argv
  rows = tables.read_table(_RESULTS.value)
  results_dir = os.path.dirname(_RESULTS.value)
  params_col, flops_col, source = _columns(results_dir)
  print(f"N: {params_col}, C: {flops_col or '6 N D'} ({source})")
  budget_col = _BUDGET.value if _BUDGET.value and _BUDGET.value in rows[0] else None
  rows, left_out = _usable_rows(
    _RESULTS.value,
    rows,
    {
      "--params_col": params_col,
      "--loss_col": _LOSS.value,
      "--tokens_col": _TOKENS.value,
      "--flops_col": flops_col,
      "--budget_col": budget_col,
    },
  )
  rows = tables.canonical_order(rows)  # a fit must not depend on the order runs finished in
  final = tables.table_points(
    rows, params_col, _LOSS.value, _TOKENS.value or None, flops_col or None, budget_col
  )
  curves = None
  if _CURVES.value and "workdir" in rows[0]:
    curves = tables.curve_points(rows, results_dir, final)
  report = {**laws.fit_all(final, curves, _REF.value, _BOOT.value), **left_out}
  failed = [report[k].get("error") for k in ("approach1", "approach2", "approach3")]
  if all(failed):
    raise ValueError(f"{_RESULTS.value}: nothing can be fitted: " + "; ".join(failed))
  report["columns"] = {"params": params_col, "flops": flops_col or "6ND", "loss": _LOSS.value}
  print(printouts.format_table(report))
  table = _table(rows, final)
  repeats = noise.read_repeats(results_dir)
  report["seed_noise"] = noise.seed_noise(rows, repeats, _LOSS.value) if repeats else None
  if report["seed_noise"]:
    print(printouts.format_seed_noise(report["seed_noise"]))
  report["backtest"] = selection.select(table)
  print(printouts.format_backtest(report["backtest"]))
  print(diagnostics.format_diagnostics(diagnostics.diagnose(final, report)))
  if _PREDICT.value:
    try:
      report["prediction"] = _predict(table, report, _PREDICT.value)
    except ValueError as e:
      print(f"no prediction at C = {_PREDICT.value:.4g} FLOPs: {e}")
    else:
      print(printouts.format_prediction(report["prediction"]))
  tasks = _tasks(rows, final, report)
  verification = _verification(results_dir, report, table)
  if verification:
    report["verification"] = verification
    print(verify.format_verification(verification))
  print(report_file.write(report, _OUT.value, os.path.join(results_dir, laws.REPORT_FILE)))
  if _PLOTS.value:
    labels = plots.Labels.of_columns(params_col, flops_col)
    cooldown_png = os.path.join(_PLOTS.value, "cooldown_curves.png")
    written, not_written = plots.all_plots(final, curves, report, _PLOTS.value, labels)
    for path, why in not_written.items():
      print(f"{path} not written: {why}")
    drawn: list[str | None] = [*written, plots.cooldown_curves(rows, results_dir, cooldown_png)]
    choices = os.path.join(results_dir, lr_search.CHOICE_FILE)
    if os.path.exists(choices):
      with open(choices) as f:
        drawn.append(plots.lr_sweep(json.load(f), os.path.join(_PLOTS.value, "lr_sweep.png")))
    if tasks:
      drawn.append(task_plots.tasks_plot(tasks, os.path.join(_PLOTS.value, "tasks.png"), labels))
    for path in filter(None, drawn):
      print(f"wrote {path}")


def run() -> None:
  """The `lm-fit-scaling` command."""
  cli.run(cli.one_line_errors(main), __name__)


if __name__ == "__main__":
  run()
