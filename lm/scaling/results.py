"""A sweep's results table: its columns, the run identity (config hash) a row is kept under,
reading and appending rows, a run's row from its summary and its metrics.jsonl, and which
planned runs the table holds already.

The table is `results.jsonl` and, the same rows, `results.csv`; a learning-rate trial's row
goes to `lr_trials.jsonl` beside them (lm/scaling/lr_search.py), a seed repeat's to
`seed_repeats.jsonl` (lm/scaling/noise.py). A row's `method` is the sweep's `scaling.method`
('independent', or 'cooldown' for a branch's row). With `scaling.eval_tasks` a row also has a
column per task metric (`task_<task>_<metric>`, lm/scaling/sweep_tasks.py) after COLUMNS.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import statistics
from collections.abc import Sequence
from typing import Any

from lm.model import counts
from lm.model.config import architecture
from lm.runs import metrics, run_files
from lm.runtime import paths
from lm.scaling import grid

RESULTS_CSV, RESULTS_JSONL = "results.csv", "results.jsonl"
COLUMNS: tuple[str, ...] = (
  "name",
  "budget",
  "num_layers",
  "d_model",
  "params_total",
  "params_non_embedding",
  "params_embedding",
  "params_head",
  "params_matmul",
  "tokens",
  "flops_6N",
  "flops_6N+attn",
  "flops_exact",
  "train_loss",
  "eval_loss",
  "tokens_per_s",
  "wall_s",
  "steps",
  "learning_rate",
  "method",
  "branch_of",
  "branch_step",
  "config_hash",
  "workdir",
)
TASK_PREFIX = "task_"  # a task metric's column: task_<task>_<metric> (lm/scaling/sweep_tasks.py)


def config_hash(config) -> str:
  """A short stable hash of what a run trains (`run_files.identity`), so that a finished run is
  not trained again."""
  text = json.dumps(run_files.identity(config.to_dict()), sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_results(workdir: str, name: str = RESULTS_JSONL) -> list[dict[str, Any]]:
  """The rows of `<workdir>/results.jsonl` (or of `name`, e.g. lr_search.TRIALS_JSONL), in
  order."""
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
  """The CSV's columns: COLUMNS, then the task columns that any of `rows` has, sorted."""
  tasks = sorted({k for row in rows for k in row if k.startswith(TASK_PREFIX)})
  return [*COLUMNS, *tasks]


def append_row(workdir: str, row: dict[str, Any], table: str = RESULTS_JSONL) -> None:
  """Appends `row` to results.jsonl and results.csv (or to `table` only, e.g.
  lr_search.TRIALS_JSONL for a learning-rate trial's); a CSV with other columns (a table from
  before some of them, or without a task column this row has) is written again from the JSONL,
  its rows' missing columns empty."""
  with open(os.path.join(workdir, table), "a") as f:
    f.write(json.dumps(row) + "\n")
  if table != RESULTS_JSONL:
    return
  path = os.path.join(workdir, RESULTS_CSV)
  header = None
  if os.path.exists(path):
    with open(path, newline="") as f:
      header = next(csv.reader(f), None)
  rows = read_results(workdir)
  columns = columns_of(rows)
  if header != columns:
    _write_csv(path, rows, columns)
    return
  with open(path, "a", newline="") as f:
    csv.DictWriter(f, fieldnames=columns).writerow(row)


def rewrite(workdir: str, rows: Sequence[dict[str, Any]]) -> None:
  """Replaces results.jsonl and results.csv with `rows` (e.g. with task columns added)."""
  lines = "".join(json.dumps(row) + "\n" for row in rows)
  paths.write_atomically(os.path.join(workdir, RESULTS_JSONL), lines)
  _write_csv(os.path.join(workdir, RESULTS_CSV), rows, columns_of(rows))


def _write_csv(path: str, rows: Sequence[dict[str, Any]], columns: list[str]) -> None:
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)


def logged_summary(run_dir: str) -> dict[str, float]:
  """What a run's metrics.jsonl logged: its last `step`, last train `loss` and `eval_loss`
  (where logged), and its median `tokens_per_s` (nan without any)."""
  out: dict[str, Any] = {"tokens_per_s": [], "step": 0}
  for row in metrics.read_metrics(run_dir):
    for key in ("loss", "eval_loss"):
      if key in row:
        out[key] = row[key]
    out["step"] = max(out["step"], row.get("step", 0))
    if "tokens_per_s" in row:
      out["tokens_per_s"].append(row["tokens_per_s"])
  speeds = out.pop("tokens_per_s")
  return {**out, "tokens_per_s": statistics.median(speeds) if speeds else math.nan}


def result_row(
  plan: grid.RunPlan, run_cfg, summary: dict[str, Any], run_dir: str, workdir: str
) -> dict[str, Any]:
  """One results-table row: counts by convention, tokens, FLOPs, final losses, speed. A loss
  that `summary` lacks (nan) is the last one the run's metrics.jsonl logged."""
  model = architecture(run_cfg.model, summary["vocab_size"])
  n_params = counts.param_counts(model)
  tokens = summary["step"] * summary["tokens_per_step"]
  logged = logged_summary(run_dir)
  train_loss, eval_loss = summary["train_loss"], summary["eval_loss"]
  row = {
    "name": plan.name,
    "budget": plan.budget,
    "num_layers": plan.num_layers,
    "d_model": plan.d_model,
    **{f"params_{k}": v for k, v in n_params.items()},
    "tokens": tokens,
    "steps": summary["step"],
    "train_loss": train_loss if math.isfinite(train_loss) else logged.get("loss", math.nan),
    "eval_loss": eval_loss if math.isfinite(eval_loss) else logged.get("eval_loss", math.nan),
    "tokens_per_s": logged["tokens_per_s"],
    "wall_s": summary["wall_s"],
    "learning_rate": plan.learning_rate,
    "method": run_cfg.scaling.method,
    "branch_of": plan.branch_of,
    "branch_step": plan.branch_step,
    "config_hash": config_hash(run_cfg),
    "workdir": os.path.relpath(run_dir, workdir),
  }
  for convention in counts.FLOP_CONVENTIONS:
    per_token = counts.training_flops_per_token(model, run_cfg.data.seq_len, convention)
    row[f"flops_{convention}"] = float(tokens * per_token)
  if plan.seed:  # a seed repeat's row (lm/scaling/noise.py)
    row |= {"seed": plan.seed, "repeat_of": plan.repeat_of}
  return row


def finished(
  config, runs: Sequence[grid.RunPlan], rows: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
  """The rows of `runs` (by name) that `rows` hold with the config hash they have now."""
  by_key = {(r["name"], r["config_hash"]): r for r in rows}
  keys = {p.name: (p.name, config_hash(grid.run_config(config, p))) for p in runs}
  return {name: by_key[key] for name, key in keys.items() if key in by_key}
