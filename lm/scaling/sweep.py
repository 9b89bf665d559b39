"""Runs an IsoFLOP plan: one sub-workdir per run, and a results table (CSV and JSONL).

A run whose name and config hash are already in the table is skipped; an interrupted run
resumes from its checkpoint; a run finished elsewhere (e.g. from `emit_commands` on a
cluster) only has its row collected from the checkpoint and its metrics.jsonl. Worker processes
and printed commands run the training entry point the caller hands in.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import statistics
import subprocess
import time
from typing import Any, Callable, Sequence

from lm import exit_status, train
from lm.model import counts
from lm.scaling import grid
from lm.data import token_cache
from lm.model.config import architecture

log = logging.getLogger(__name__)

RESULTS_CSV, RESULTS_JSONL = "results.csv", "results.jsonl"
COLUMNS = ("name", "budget", "num_layers", "d_model", "params_total", "params_non_embedding",
           "params_embedding", "params_head", "params_matmul", "tokens", "flops_6N",
           "flops_6N+attn", "flops_exact", "train_loss", "eval_loss", "tokens_per_s", "wall_s",
           "steps", "config_hash", "workdir")


# What a run's identity leaves out: the sweep's plan (more sizes or budgets leave a run as it
# was), the execution (how fast a step runs, not what it computes), and the fields that change
# how the loop reports, saves and watches, not what it trains.
NOT_IDENTITY = ("scaling", "execution", "train.log_every", "train.checkpoint_every",
                "train.keep_checkpoints", "train.async_checkpoints", "train.stop_after_steps",
                "train.watchdog_s", "train.wandb_project", "train.wandb_mode",
                "data.num_threads", "data.prefetch", "data.data_dir")


def config_hash(config) -> str:
  """A short stable hash of what a run trains: its architecture, data and training recipe
  (the config without NOT_IDENTITY), so that a finished run is not trained again."""
  fields = config.to_dict()
  for name in NOT_IDENTITY:
    section, _, field = name.partition(".")
    if field:
      fields.get(section, {}).pop(field, None)
    else:
      fields.pop(section, None)
  text = json.dumps(fields, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def vocab_size(config) -> int:
  """The padded vocabulary size the runs' models will have (tokenizes the corpus once)."""
  data = token_cache.tokenized_data(config.data)
  return architecture(config.model, data.tokenizer.vocab_size).vocab_size


def read_results(workdir: str) -> list[dict[str, Any]]:
  """The rows of `<workdir>/results.jsonl`, in order."""
  path = os.path.join(workdir, RESULTS_JSONL)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _append(workdir: str, row: dict[str, Any]) -> None:
  with open(os.path.join(workdir, RESULTS_JSONL), "a") as f:
    f.write(json.dumps(row) + "\n")
  path = os.path.join(workdir, RESULTS_CSV)
  new = not os.path.exists(path)
  with open(path, "a", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    if new:
      writer.writeheader()
    writer.writerow(row)


def _from_metrics(run_dir: str) -> dict[str, float]:
  """Last step, train and eval loss and the median tokens/s logged in a run's metrics.jsonl."""
  out: dict[str, Any] = {"tokens_per_s": [], "step": 0}
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    for row in map(json.loads, f):
      for key in ("step", "loss", "eval_loss"):
        if key in row:
          out[key] = row[key]
      if "tokens_per_s" in row:
        out["tokens_per_s"].append(row["tokens_per_s"])
  speeds = out.pop("tokens_per_s")
  return {**out, "tokens_per_s": statistics.median(speeds) if speeds else math.nan}


def result_row(plan: grid.RunPlan, run_cfg, summary: dict[str, Any],
               run_dir: str, workdir: str) -> dict[str, Any]:
  """One results-table row: counts by convention, tokens, FLOPs, final losses, speed."""
  model = architecture(run_cfg.model, summary["vocab_size"])
  n_params = counts.param_counts(model)
  tokens = summary["step"] * summary["tokens_per_step"]
  logged = _from_metrics(run_dir)
  train_loss, eval_loss = summary["train_loss"], summary["eval_loss"]
  row = {"name": plan.name, "budget": plan.budget, "num_layers": plan.num_layers,
         "d_model": plan.d_model, **{f"params_{k}": v for k, v in n_params.items()},
         "tokens": tokens, "steps": summary["step"],
         "train_loss": train_loss if math.isfinite(train_loss) else logged.get("loss", math.nan),
         "eval_loss": eval_loss if math.isfinite(eval_loss) else logged.get("eval_loss", math.nan),
         "tokens_per_s": logged["tokens_per_s"], "wall_s": summary["wall_s"],
         "config_hash": config_hash(run_cfg), "workdir": os.path.relpath(run_dir, workdir)}
  for convention in counts.FLOP_CONVENTIONS:
    per_token = counts.training_flops_per_token(model, run_cfg.data.seq_len, convention)
    row[f"flops_{convention}"] = float(tokens * per_token)
  return row


def _pending(config, workdir: str, vocab: int) -> list[grid.RunPlan]:
  """The planned runs whose name and config hash are not in the results table yet."""
  done = {(r["name"], r["config_hash"]) for r in read_results(workdir)}
  pending = []
  for plan in grid.plan_runs(config, vocab):
    if (plan.name, config_hash(grid.run_config(config, plan))) in done:
      log.info("%s: in the results table, skipped", plan.name)
    else:
      pending.append(plan)
  return pending


def run_sweep(config, workdir: str,
              runner: Callable[[Any, str], dict[str, Any]] = train.train_and_evaluate
              ) -> list[dict[str, Any]]:
  """Trains every planned run in sequence, appending a row per finished run; returns the table."""
  os.makedirs(workdir, exist_ok=True)
  vocab = vocab_size(config)
  for plan in _pending(config, workdir, vocab):
    run_cfg = grid.run_config(config, plan)
    log.info("%s: %d layers x %d, %d params, %d tokens, %d steps", plan.name, plan.num_layers,
             plan.d_model, plan.params, plan.tokens, plan.steps)
    run_dir = os.path.join(workdir, plan.name)
    summary = runner(run_cfg, run_dir)
    if summary["step"] < plan.steps:
      log.warning("%s stopped at step %d of %d; run the sweep again to continue", plan.name,
                  summary["step"], plan.steps)
      break
    _append(workdir, result_row(plan, run_cfg, {**summary, "vocab_size": vocab}, run_dir,
                                workdir))
  return read_results(workdir)


def _train_argv(train_command: Sequence[str], run_dir: str, plan: grid.RunPlan) -> list[str]:
  flags = [f"--config.{k}={v}" for k, v in grid.run_overrides(plan).items()]
  return [*train_command, f"--workdir={run_dir}", *flags]


def commands(config, train_command: Sequence[str], workdir: str) -> list[str]:
  """One command per planned run: `train_command` (the entry point that trains one run, with
  the sweep's config and overrides) followed by the run's workdir and overrides."""
  return [" ".join(_train_argv(train_command, os.path.join(workdir, plan.name), plan))
          for plan in grid.plan_runs(config, vocab_size(config))]


def worker_env(slot: int, workers: int, split: str) -> tuple[dict[str, str], set[int] | None]:
  """Environment and CPU set for worker `slot` of `workers`.

  'cores': each worker gets an equal share of this process's CPUs (XLA's thread pool then
  sizes itself to it; a one-core share also turns Eigen's threading off). 'gpus': each worker
  sees one GPU (CUDA_VISIBLE_DEVICES=slot) and shares the CPUs.
  """
  env = dict(os.environ)
  if split == "gpus":
    env["CUDA_VISIBLE_DEVICES"] = str(slot)
    return env, None
  if split != "cores":
    raise ValueError(f"worker split {split!r}; valid: 'cores', 'gpus'")
  cpus = sorted(os.sched_getaffinity(0))
  share = len(cpus) // workers
  if share < 1:
    raise ValueError(f"{workers} workers for {len(cpus)} CPUs: at most one worker per CPU")
  if share == 1:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
  return env, set(cpus[slot * share:(slot + 1) * share])


def run_sweep_in_workers(config, train_command: Sequence[str], workdir: str, workers: int,
                         split: str = "cores") -> list[dict[str, Any]]:
  """Trains the runs missing from the table as `workers` concurrent processes, each
  `train_command` with a run's workdir and overrides (logs in `<run>/train.log`), appending
  each run's row when it finishes; returns the table. A failed run is reported with its log and
  stops the sweep after the others finish.
  """
  os.makedirs(workdir, exist_ok=True)
  vocab = vocab_size(config)  # prepares the data once, before the workers start
  queue = _pending(config, workdir, vocab)
  running: dict[int, tuple[subprocess.Popen, grid.RunPlan, float]] = {}
  failed = []
  while queue or running:
    for slot in set(range(workers)) - set(running):
      if not queue:
        break
      plan = queue.pop(0)
      run_dir = os.path.join(workdir, plan.name)
      os.makedirs(run_dir, exist_ok=True)
      env, cpus = worker_env(slot, workers, split)
      log.info("%s: started on worker %d (%d params, %d steps)", plan.name, slot, plan.params,
               plan.steps)
      # taskset pins before Python starts (a preexec_fn would run Python in a forked child of
      # a multithreaded process).
      pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
      with open(os.path.join(run_dir, "train.log"), "ab") as out:
        proc = subprocess.Popen(
            [*pin, *_train_argv(train_command, run_dir, plan)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
      running[slot] = (proc, plan, time.perf_counter())
    time.sleep(0.5)
    for slot, (proc, plan, t0) in list(running.items()):
      if proc.poll() is None:
        continue
      del running[slot]
      run_dir = os.path.join(workdir, plan.name)
      if proc.returncode == exit_status.PREEMPTED:
        log.warning("%s was preempted; run the sweep again to continue it", plan.name)
        continue
      if proc.returncode:
        failed.append(plan.name)
        log.error("%s failed (exit %d): see %s", plan.name, proc.returncode,
                  os.path.join(run_dir, "train.log"))
        continue
      run_cfg = grid.run_config(config, plan)
      step = _from_metrics(run_dir)["step"]
      if step < plan.steps:
        log.warning("%s stopped at step %d of %d; run the sweep again to continue", plan.name,
                    step, plan.steps)
        continue
      wall = time.perf_counter() - t0
      log.info("%s: finished in %.0fs", plan.name, wall)
      # The losses come from the run's metrics.jsonl.
      summary = {"step": step, "train_loss": math.nan, "eval_loss": math.nan, "wall_s": wall,
                 "tokens_per_step": run_cfg.data.batch_size * run_cfg.data.seq_len,
                 "vocab_size": vocab}
      _append(workdir, result_row(plan, run_cfg, summary, run_dir, workdir))
  if failed:
    raise RuntimeError(f"runs failed: {', '.join(failed)}; their logs are in {workdir}")
  return read_results(workdir)
