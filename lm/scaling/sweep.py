"""Runs an IsoFLOP plan: one sub-workdir per run, and a results table (CSV and JSONL).

Each grid point is a run of its own (`scaling.method='independent'`) or a cooldown branched
from its size's stable run (`'cooldown'`, lm/scaling/cooldown.py); a branch starts once its
stable run has finished, and only branches add rows. With `scaling.lr_grid` a size's points
train once its learning-rate trials have chosen their learning rate (lm/scaling/lr_search.py):
a sweep trains in two rounds, the trials and then what they chose.

A run whose name and config hash are already in the table is skipped; an interrupted run
resumes from its checkpoint; a run finished elsewhere (e.g. from `emit_commands` on a
cluster) only has its row collected from the checkpoint and its metrics.jsonl. Worker processes
and printed commands run the training entry point the caller hands in. `run_verification`
trains the model a fit of the table predicts (lm/scaling/verify.py) the same way.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import select
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from absl import logging as absl_logging

from lm import logs
from lm.data import token_cache
from lm.model import counts
from lm.model.config import architecture
from lm.runs import metrics, run_files
from lm.runtime import compile_cache
from lm.scaling import cooldown, grid, lr_search, progress, verify
from lm.training import exit_status, loop

log = logging.getLogger(__name__)

RESULTS_CSV, RESULTS_JSONL = "results.csv", "results.jsonl"
COLUMNS = (
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


def config_hash(config) -> str:
  """A short stable hash of what a run trains (`run.identity`), so that a finished run is not
  trained again."""
  text = json.dumps(run_files.identity(config.to_dict()), sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def vocab_size(config) -> int:
  """The padded vocabulary size the runs' models will have (tokenizes the corpus once)."""
  data = token_cache.tokenized_data(config.data)
  return architecture(config.model, data.tokenizer.vocab_size).vocab_size


def read_results(workdir: str, name: str = RESULTS_JSONL) -> list[dict[str, Any]]:
  """The rows of `<workdir>/results.jsonl` (or of `name`, e.g. lr_search.TRIALS_JSONL), in
  order."""
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _append(workdir: str, row: dict[str, Any], lr_trial: bool = False) -> None:
  """Appends `row` to results.jsonl and results.csv (a learning-rate trial's to
  lr_trials.jsonl only); a CSV with other columns (a table from before some of them) is written
  again from the JSONL, its rows' missing columns empty."""
  with open(os.path.join(workdir, lr_search.TRIALS_JSONL if lr_trial else RESULTS_JSONL), "a") as f:
    f.write(json.dumps(row) + "\n")
  if lr_trial:
    return
  path = os.path.join(workdir, RESULTS_CSV)
  header = None
  if os.path.exists(path):
    with open(path, newline="") as f:
      header = next(csv.reader(f), None)
  rows = [row] if header == list(COLUMNS) else read_results(workdir)
  with open(path, "a" if header == list(COLUMNS) else "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    if header != list(COLUMNS):
      writer.writeheader()
    writer.writerows(rows)


def _from_metrics(run_dir: str) -> dict[str, float]:
  """Last step, last train and eval loss and the median tokens/s logged in a run's
  metrics.jsonl."""
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
  """One results-table row: counts by convention, tokens, FLOPs, final losses, speed."""
  model = architecture(run_cfg.model, summary["vocab_size"])
  n_params = counts.param_counts(model)
  tokens = summary["step"] * summary["tokens_per_step"]
  logged = _from_metrics(run_dir)
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
    "method": plan.method,
    "branch_of": plan.branch_of,
    "branch_step": plan.branch_step,
    "config_hash": config_hash(run_cfg),
    "workdir": os.path.relpath(run_dir, workdir),
  }
  for convention in counts.FLOP_CONVENTIONS:
    per_token = counts.training_flops_per_token(model, run_cfg.data.seq_len, convention)
    row[f"flops_{convention}"] = float(tokens * per_token)
  return row


def _finished(
  config, runs: Sequence[grid.RunPlan], rows: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
  """The rows of `runs` (by name) that `rows` hold with the config hash they have now."""
  by_key = {(r["name"], r["config_hash"]): r for r in rows}
  keys = {p.name: (p.name, config_hash(grid.run_config(config, p))) for p in runs}
  return {name: by_key[key] for name, key in keys.items() if key in by_key}


def sweep_runs(
  config, vocab: int, workdir: str
) -> tuple[list[grid.RunPlan], list[grid.RunPlan], dict[str, dict[str, Any]]]:
  """The grid points, the runs that train them under `config.scaling.method`, and the
  learning rates chosen so far (`scaling.lr_grid`; per size whose trials in `workdir` have all
  finished): the trials of the other sizes and the points of these at their choice."""
  points = grid.plan_runs(config, vocab)
  if not config.scaling.lr_grid:
    return points, cooldown.plan_runs(config, points), {}
  trials = lr_search.trial_runs(config, points)
  done = _finished(config, trials, read_results(workdir, lr_search.TRIALS_JSONL))
  choices = lr_search.choose(config, points, {k: r["eval_loss"] for k, r in done.items()})
  return (
    points,
    [t for t in trials if lr_search.size_of(t) not in choices]
    + lr_search.main_runs(config, points, choices),
    choices,
  )


def _pending(config, runs: list[grid.RunPlan], rows: list[dict[str, Any]]) -> list[grid.RunPlan]:
  """The runs whose name and config hash are not in `rows` yet, and the stable runs of the
  branches among them."""
  done = _finished(config, runs, rows)
  todo = [p for p in runs if p.method != "stable" and p.name not in done]
  stables = {p.branch_of for p in todo}
  return [p for p in runs if p in todo or p.name in stables]


def _prepare(
  config, workdir: str, workers: int
) -> tuple[int, list[grid.RunPlan], progress.Progress]:
  """Plans the sweep (writing `sweep.json`, with the training FLOPs of its method and of one
  independent run per grid point), logs the plan; returns the vocabulary size, the pending runs
  and their progress reporter."""
  os.makedirs(workdir, exist_ok=True)
  vocab = vocab_size(config)  # prepares the data once, before any run starts
  points, runs, choices = sweep_runs(config, vocab, workdir)
  flops = cooldown.flops_saved(
    points, lr_search.every_run(config, points) if config.scaling.lr_grid else runs
  )
  grid.save_plan(
    os.path.join(workdir, grid.PLAN_FILE),
    config,
    points,
    training_flops=flops,
    stable_runs=[dataclasses.asdict(p) for p in runs if p.method == "stable"],
  )
  if choices:
    lr_search.save_choices(os.path.join(workdir, lr_search.CHOICE_FILE), choices)
  for size, c in choices.items():
    if c["at_edge"]:
      log.warning(
        "%s: the best learning rate, %.3g (x%g), is at the edge of "
        "config.scaling.lr_grid=%s; the optimum may lie outside it",
        size,
        c["learning_rate"],
        c["best_multiplier"],
        tuple(c["multipliers"]),
      )
  rows = read_results(workdir)
  pending = _pending(config, runs, rows + read_results(workdir, lr_search.TRIALS_JSONL))
  for line in progress.plan_lines(runs, pending, rows, config, workers):
    log.info("%s", line)
  log.info(
    "method %s%s: %.3g training FLOPs (%s) for %d grid points, %.3g for one "
    "independent run per point: ratio %.3f",
    config.scaling.method,
    f" with {len(config.scaling.lr_grid)} learning rates per size"
    if config.scaling.lr_grid
    else "",
    flops["this_sweep"],
    config.scaling.flops_convention,
    len(points),
    flops["independent"],
    flops["ratio"],
  )
  return vocab, pending, progress.Progress(pending, rows, config, workers)


def _run_dir(workdir: str, plan: grid.RunPlan) -> str:
  """`plan`'s workdir, made; a new branch's seeded from its stable run."""
  run_dir = os.path.join(workdir, plan.name)
  os.makedirs(run_dir, exist_ok=True)
  if plan.branch_of:
    cooldown.start_branch(os.path.join(workdir, plan.branch_of), run_dir, plan.branch_step)
  return run_dir


def _rounds(config) -> int:
  """Rounds of planning and training a sweep needs: with `scaling.lr_grid`, the trials, then
  the runs at the learning rates they chose."""
  return 2 if config.scaling.lr_grid else 1


def run_sweep(
  config,
  workdir: str,
  runner: Callable[[Any, str], dict[str, Any]] = loop.train_and_evaluate,
  cache_dir: str | None = None,
) -> list[dict[str, Any]]:
  """Trains every planned run in sequence, appending a row per finished run; returns the table.
  `cache_dir`: see `compile_cache.use`."""
  compile_cache.use(cache_dir)
  for _ in range(_rounds(config)):
    vocab, pending, prog = _prepare(config, workdir, 1)
    for plan in pending:
      row = _train_here(config, workdir, plan, vocab, prog, runner)
      if row is None:
        return read_results(workdir)
      if row:
        _append(workdir, row, plan.lr_trial)
  return read_results(workdir)


def _train_here(
  config,
  workdir: str,
  plan: grid.RunPlan,
  vocab: int,
  prog: progress.Progress,
  runner: Callable[[Any, str], dict[str, Any]],
) -> dict[str, Any] | None:
  """Trains `plan` in this process; returns its results row ({} for a stable run, which has
  none), or None where it stopped before its last step."""
  run_cfg = grid.run_config(config, plan)
  log.info("%s", prog.started(plan))
  run_dir = _run_dir(workdir, plan)
  t0 = time.perf_counter()
  summary = runner(run_cfg, run_dir)
  if summary["step"] < plan.steps:
    log.warning(
      "%s stopped at step %d of %d; run the sweep again to continue",
      plan.name,
      summary["step"],
      plan.steps,
    )
    return None
  log.info("%s", prog.finished(plan, time.perf_counter() - t0))
  if plan.method == "stable":
    return {}
  return result_row(plan, run_cfg, {**summary, "vocab_size": vocab}, run_dir, workdir)


def run_verification(
  config,
  workdir: str,
  runner: Callable[[Any, str], dict[str, Any]] = loop.train_and_evaluate,
  cache_dir: str | None = None,
) -> dict[str, Any] | None:
  """Trains the verification run of the prediction in `<workdir>/fit.json` in this process
  (lm/scaling/verify.py; skipped where `verification.json` holds it already), writes
  `verification.json` and returns it; None where the run stopped before its last step.
  `cache_dir`: see `compile_cache.use`."""
  compile_cache.use(cache_dir)
  vocab = vocab_size(config)
  fit = verify.read_fit(workdir, config)
  points, _, choices = sweep_runs(config, vocab, workdir)
  runs, lr_source = verify.plan_runs(config, vocab, fit["prediction"], points, choices)
  before = verify.load(workdir)
  rows = [before["row"]] if before else []
  pending = _pending(config, runs, rows)
  sweep_rows = read_results(workdir)  # their speed estimates the time
  log.info(
    "verification of the prediction at C = %.4g (N_opt %.4g): %s, learning rate %.3g (%s)",
    fit["prediction"]["flops"],
    fit["prediction"]["n_opt"],
    runs[-1].name,
    lr_source["learning_rate"],
    verify.describe_lr(lr_source),
  )
  for line in progress.plan_lines(runs, pending, sweep_rows, config, 1):
    log.info("%s", line)
  prog = progress.Progress(pending, sweep_rows, config, 1)
  for plan in pending:
    row = _train_here(config, workdir, plan, vocab, prog, runner)
    if row is None:
      return None
    if row:
      rows = [row]
  row = _finished(config, runs[-1:], rows)[runs[-1].name]
  comparison = verify.compare(fit["prediction"], fit["approach3"], row, fit["columns"])
  return verify.save(workdir, comparison, row, lr_source)


def _train_argv(train_command: Sequence[str], run_dir: str, plan: grid.RunPlan) -> list[str]:
  flags = [f"--config.{k}={v}" for k, v in grid.run_overrides(plan).items()]
  return [*train_command, f"--workdir={run_dir}", *flags]


def commands(config, train_command: Sequence[str], workdir: str) -> list[str]:
  """One command per planned run: `train_command` (the entry point that trains one run, with
  the sweep's config and overrides) followed by the run's workdir and overrides."""
  if config.scaling.method != "independent":
    raise ValueError(
      f"config.scaling.method={config.scaling.method!r}: a branch starts from a "
      "copy of its stable run's checkpoint, which these commands do not make; "
      "emit_commands lists the 'independent' method's runs only"
    )
  if config.scaling.lr_grid:
    raise ValueError(
      f"config.scaling.lr_grid={config.scaling.lr_grid}: the runs depend on the "
      "trials' losses; emit_commands lists a sweep without learning-rate trials"
    )
  return [
    " ".join(_train_argv(train_command, os.path.join(workdir, plan.name), plan))
    for plan in grid.plan_runs(config, vocab_size(config))
  ]


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
  return env, set(cpus[slot * share : (slot + 1) * share])


def serve(
  config,
  workdir: str,
  requests: IO[str],
  replies: IO[str],
  runner: Callable[[Any, str], dict[str, Any]] = loop.train_and_evaluate,
) -> int:
  """A reusable worker: trains the runs named on `requests` (one name a line) one after another
  in this process (imports, JAX and the data are set up once), each logging to
  `<run>/train.log`, and answers each with a JSON line on `replies` (`name`, `status` as in
  status.json, `detail`). Returns the exit status: 0 at the end of `requests`, or
  `exit_status.PREEMPTED` after a preempted run."""
  vocab = vocab_size(config)
  root = logging.getLogger()
  for line in requests:
    # Planned again for each: the learning-rate trials finished so far change the plan.
    plan = {p.name: p for p in sweep_runs(config, vocab, workdir)[1]}[line.strip()]
    run_dir = _run_dir(workdir, plan)
    handler = logging.FileHandler(os.path.join(run_dir, "train.log"))
    handler.setFormatter(absl_logging.PythonFormatter())  # the lines train.py's output has
    logs.quiet_libraries(handler)
    root.addHandler(handler)
    try:
      summary = runner(grid.run_config(config, plan), run_dir)
      reply = {
        "name": plan.name,
        "status": run_files.PREEMPTED if summary["preempted"] else run_files.FINISHED,
        "detail": summary["preempted"] or "",
      }
    except Exception as e:
      # One run's bad luck (a non-finite loss, a full disk) need not stop the worker's others.
      log.exception("%s failed", plan.name)
      reply = {"name": plan.name, "status": run_files.FAILED, "detail": f"{type(e).__name__}: {e}"}
    finally:
      root.removeHandler(handler)
      handler.close()
    replies.write(json.dumps(reply) + "\n")
    replies.flush()
    if reply["status"] == run_files.PREEMPTED:
      return exit_status.PREEMPTED
  return 0


def _start(
  command: Sequence[str],
  slot: int,
  workers: int,
  split: str,
  log_path: str,
  pipes: bool,
  cache_env: dict[str, str],
) -> subprocess.Popen:
  env, cpus = worker_env(slot, workers, split)
  env.update(cache_env)
  # taskset pins before Python starts (a preexec_fn would run Python in a forked child of
  # a multithreaded process).
  pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
  with open(log_path, "ab") as out:
    return subprocess.Popen(
      [*pin, *command],
      env=env,
      stderr=out,
      stdout=subprocess.PIPE if pipes else out,
      stdin=subprocess.PIPE if pipes else None,
      text=pipes,
    )


def _ended(proc: subprocess.Popen, reusable: bool) -> tuple[str, str] | None:
  """(status, detail) of the run `proc` trains, or None while it trains."""
  if reusable:
    if select.select([proc.stdout], [], [], 0)[0]:
      line = proc.stdout.readline()
      if line:
        reply = json.loads(line)
        return reply["status"], reply["detail"]
    elif proc.poll() is None:
      return None
    return run_files.FAILED, f"worker exited with status {proc.wait()}"
  if proc.poll() is None:
    return None
  if proc.returncode == exit_status.PREEMPTED:
    return run_files.PREEMPTED, ""
  return (
    (run_files.FAILED, f"exit {proc.returncode}") if proc.returncode else (run_files.FINISHED, "")
  )


def _record(
  config,
  workdir: str,
  plan: grid.RunPlan,
  status: str,
  detail: str,
  wall_s: float,
  vocab: int,
  prog: progress.Progress,
) -> bool:
  """Logs how a worker's run of `plan` ended (`status`, `detail`, after `wall_s` seconds) and
  appends its row if it finished (but a stable run's: it has none); returns whether it did."""
  run_dir = os.path.join(workdir, plan.name)
  if status == run_files.PREEMPTED:
    log.warning("%s was preempted; run the sweep again to continue it", plan.name)
    return False
  if status == run_files.FAILED:
    log.error("%s failed (%s): see %s", plan.name, detail, os.path.join(run_dir, "train.log"))
    return False
  step = _from_metrics(run_dir)["step"]
  if step < plan.steps:
    log.warning(
      "%s stopped at step %d of %d; run the sweep again to continue", plan.name, step, plan.steps
    )
    return False
  log.info("%s", prog.finished(plan, wall_s))
  if plan.method != "stable":
    run_cfg = grid.run_config(config, plan)
    # The losses come from the run's metrics.jsonl.
    summary = {
      "step": step,
      "train_loss": math.nan,
      "eval_loss": math.nan,
      "wall_s": wall_s,
      "tokens_per_step": run_cfg.data.batch_size * run_cfg.data.seq_len,
      "vocab_size": vocab,
    }
    _append(workdir, result_row(plan, run_cfg, summary, run_dir, workdir), plan.lr_trial)
  return True


def run_sweep_in_workers(
  config,
  train_command: Sequence[str],
  workdir: str,
  workers: int,
  split: str = "cores",
  worker_command: Sequence[str] | None = None,
  cache_dir: str | None = None,
) -> list[dict[str, Any]]:
  """Trains the runs missing from the table on `workers` concurrent processes, appending each
  run's row when it finishes; returns the table. A failed run is reported with its log and
  stops the sweep after the others finish. A branch starts once its stable run has finished;
  with `scaling.lr_grid` the sweep trains in two rounds (`_rounds`).

  Without `worker_command`, each run is a process of its own: `train_command` with the run's
  workdir and overrides (output in `<run>/train.log`). With it, each worker is one process,
  `worker_command` (an entry point that calls `serve` with the sweep's config and workdir),
  which trains the runs it is sent in turn; its own output goes to `<workdir>/worker<k>.log`.
  `cache_dir`: see `compile_cache.use`.
  """
  cache_env = compile_cache.use(cache_dir)
  reusable = worker_command is not None
  procs: dict[int, subprocess.Popen] = {}  # the reusable workers, by slot
  failed = []
  for _ in range(_rounds(config)):
    if failed:
      break
    vocab, queue, prog = _prepare(config, workdir, workers)
    running: dict[int, tuple[subprocess.Popen, grid.RunPlan, float]] = {}

    def drop(plan: grid.RunPlan, queue=queue, prog=prog) -> None:  # and its branches
      for p in [plan, *(p for p in queue if p.branch_of == plan.name)]:
        prog.dropped(p)
        if p in queue:
          queue.remove(p)

    while queue or running:
      for slot in sorted(set(range(workers)) - set(running)):
        # A branch waits for its stable run (one this sweep trains: queued or running).
        waiting = {p.name for p in queue} | {p.name for _, p, _ in running.values()}
        plan = next((p for p in queue if p.branch_of not in waiting), None)
        if plan is None:
          break
        queue.remove(plan)
        run_dir = _run_dir(workdir, plan)
        if reusable:
          if slot not in procs:
            procs[slot] = _start(
              worker_command,
              slot,
              workers,
              split,
              os.path.join(workdir, f"worker{slot}.log"),
              pipes=True,
              cache_env=cache_env,
            )
          proc = procs[slot]
          proc.stdin.write(plan.name + "\n")
          proc.stdin.flush()
        else:
          proc = _start(
            _train_argv(train_command, run_dir, plan),
            slot,
            workers,
            split,
            os.path.join(run_dir, "train.log"),
            pipes=False,
            cache_env=cache_env,
          )
        running[slot] = (proc, plan, time.perf_counter())
        log.info("%s", prog.started(plan, f" on worker {slot}"))
      if not running:
        break  # what is left waits for a stable run that stopped: the next sweep
      time.sleep(0.2)
      for slot, (proc, plan, t0) in list(running.items()):
        ended = _ended(proc, reusable)
        if ended is None:
          continue
        del running[slot]
        status, detail = ended
        if reusable and (status != run_files.FINISHED or proc.poll() is not None):
          procs.pop(slot, None)  # a worker that stopped, or that failed a run, is not reused
          if proc.poll() is None:
            proc.stdin.close()
        if not _record(
          config, workdir, plan, status, detail, time.perf_counter() - t0, vocab, prog
        ):
          drop(plan)
          if status == run_files.FAILED:
            failed.append(plan.name)
  for proc in procs.values():
    proc.stdin.close()
    proc.wait()
  if failed:
    raise RuntimeError(f"runs failed: {', '.join(failed)}; their logs are in {workdir}")
  return read_results(workdir)
