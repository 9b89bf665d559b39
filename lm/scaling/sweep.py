"""Runs an IsoFLOP plan: the runs a sweep trains, round by round, each in a sub-workdir, and
the rows they add to the results table (lm/scaling/results.py).

Each grid point is a run of its own (`scaling.method='independent'`) or a cooldown branched
from its size's stable run (`'cooldown'`, lm/scaling/cooldown.py); a branch starts once its
stable run has finished, and only branches add rows. With `scaling.lr_grid` a size's points
train once its learning-rate trials have chosen their learning rate (lm/scaling/lr_search.py):
a sweep trains in two rounds, the trials and then what they chose (one, where the trials had
all finished before it started). The seed repeats of
`scaling.noise_sizes` (lm/scaling/noise.py) train beside the runs they repeat.

A run whose name and config hash are already in the table is skipped; an interrupted run
resumes from its checkpoint; a run finished elsewhere (e.g. from `commands` on a cluster) only
has its row collected from the checkpoint and its metrics.jsonl. `run_sweep` trains in this
process; lm/scaling/workers.py trains the same rounds on worker processes; `train_run` trains
one named run, a scheduler's task (launch/slurm_sweep.py). `run_verification`
trains the model a fit of the table predicts (lm/scaling/verify.py) the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from lm.data import token_cache
from lm.model.config import architecture
from lm.runtime import compile_cache
from lm.scaling import cooldown, grid, lr_search, noise, progress, results, sweep_tasks, verify
from lm.training import loop

log = logging.getLogger(__name__)

Runner = Callable[[Any, str], dict[str, Any]]  # trains (run config, run workdir) -> summary


def vocab_size(config) -> int:
  """The padded vocabulary size the runs' models will have (tokenizes the corpus once)."""
  data = token_cache.tokenized_data(config.data)
  return architecture(config.model, data.tokenizer.vocab_size).vocab_size


def sweep_runs(
  config, vocab: int, workdir: str
) -> tuple[list[grid.RunPlan], list[grid.RunPlan], dict[str, dict[str, Any]]]:
  """The grid points, the runs that train them under `config.scaling.method` and their seed
  repeats (lm/scaling/noise.py), and the learning rates chosen so far (`scaling.lr_grid`; per
  size whose trials in `workdir` have all finished): the trials of the other sizes and the
  points of these at their choice."""
  points = grid.plan_runs(config, vocab)
  if not config.scaling.lr_grid:
    return points, cooldown.plan_runs(config, points) + noise.repeat_runs(config, points, {}), {}
  trials = lr_search.trial_runs(config, points)
  done = results.finished(config, trials, results.read_results(workdir, lr_search.TRIALS_JSONL))
  choices = lr_search.choose(config, points, {k: r["eval_loss"] for k, r in done.items()})
  return (
    points,
    [t for t in trials if lr_search.size_of(t) not in choices]
    + lr_search.main_runs(config, points, choices)
    + noise.repeat_runs(config, points, choices),
    choices,
  )


def table_of(plan: grid.RunPlan) -> str:
  """The file beside the results table that `plan`'s row goes to: results.jsonl (and .csv),
  a learning-rate trial's lr_trials.jsonl or a seed repeat's seed_repeats.jsonl."""
  if plan.lr_trial:
    return lr_search.TRIALS_JSONL
  return noise.REPEATS_JSONL if plan.seed else results.RESULTS_JSONL


def _every_run(config, points: list[grid.RunPlan], runs: list[grid.RunPlan]) -> list[grid.RunPlan]:
  """What the sweep trains in all, whatever the trials choose (for its FLOPs): `runs`, or with
  `scaling.lr_grid` every trial and the runs after them as if each size chose its first."""
  if not config.scaling.lr_grid:
    return runs
  every_choice = lr_search.every_choice(config, points)
  return lr_search.every_run(config, points) + noise.repeat_runs(config, points, every_choice)


def _pending(config, runs: list[grid.RunPlan], rows: list[dict[str, Any]]) -> list[grid.RunPlan]:
  """The runs whose name and config hash are not in `rows` yet, and the stable runs of the
  branches among them."""
  done = results.finished(config, runs, rows)
  todo = [p for p in runs if p.adds_row and p.name not in done]
  stables = {p.branch_of for p in todo}
  return [p for p in runs if p in todo or p.name in stables]


def _warn_at_edges(choices: dict[str, dict[str, Any]]) -> None:
  """Warns of each size whose best learning rate is at an end of `scaling.lr_grid`."""
  for size, choice in choices.items():
    if choice["at_edge"]:
      log.warning(
        "%s: the best learning rate, %.3g (x%g), is at the edge of "
        "config.scaling.lr_grid=%s; the optimum may lie outside it",
        size,
        choice["learning_rate"],
        choice["best_multiplier"],
        tuple(choice["multipliers"]),
      )


def _log_flops(config, num_points: int, flops: dict[str, float]) -> None:
  """Logs the training FLOPs of the sweep's method against one independent run per point."""
  scaling = config.scaling
  log.info(
    "method %s%s: %.3g training FLOPs (%s) for %d grid points, %.3g for one "
    "independent run per point: ratio %.3f",
    scaling.method,
    f" with {len(scaling.lr_grid)} learning rates per size" if scaling.lr_grid else "",
    flops["this_sweep"],
    scaling.flops_convention,
    num_points,
    flops["independent"],
    flops["ratio"],
  )


def plan_round(
  config, workdir: str, workers: int, write: bool = True
) -> tuple[int, list[grid.RunPlan], progress.Progress]:
  """Plans a round of the sweep (writing `sweep.json`, with the training FLOPs of its method
  and of one independent run per grid point, unless not `write`), logs the plan; returns the
  vocabulary size, the pending runs and their progress reporter."""
  vocab = vocab_size(config)  # prepares the data once, before any run starts
  points, runs, choices = sweep_runs(config, vocab, workdir)
  flops = cooldown.flops_saved(points, _every_run(config, points, runs))
  if write:
    os.makedirs(workdir, exist_ok=True)
    grid.save_plan(
      os.path.join(workdir, grid.PLAN_FILE),
      config,
      points,
      training_flops=flops,
      stable_runs=[dataclasses.asdict(p) for p in runs if p.role == "stable"],
    )
    if choices:
      lr_search.save_choices(os.path.join(workdir, lr_search.CHOICE_FILE), choices)
  _warn_at_edges(choices)
  rows = results.read_results(workdir)
  trial_rows = results.read_results(workdir, lr_search.TRIALS_JSONL)
  pending = _pending(config, runs, rows + trial_rows + noise.read_repeats(workdir))
  for line in progress.plan_lines(runs, pending, rows, config, workers):
    log.info("%s", line)
  _log_flops(config, len(points), flops)
  return vocab, pending, progress.Progress(pending, rows, config, workers)


def last_round(pending: list[grid.RunPlan]) -> bool:
  """Whether the round that trains `pending` is the sweep's last: it holds no learning-rate
  trial, so every size had its choice when it was planned (another round would plan, log and
  skip the same runs again)."""
  return not any(p.lr_trial for p in pending)


def run_dir(workdir: str, plan: grid.RunPlan) -> str:
  """`plan`'s workdir, made; a new branch's seeded from its stable run."""
  path = os.path.join(workdir, plan.name)
  os.makedirs(path, exist_ok=True)
  if plan.branch_of:
    cooldown.start_branch(os.path.join(workdir, plan.branch_of), path, plan.branch_step)
  return path


def rounds(config) -> int:
  """Rounds of planning and training a sweep needs: with `scaling.lr_grid`, the trials, then
  the runs at the learning rates they chose."""
  return 2 if config.scaling.lr_grid else 1


def run_sweep(
  config, workdir: str, runner: Runner = loop.train_and_evaluate, cache_dir: str | None = None
) -> list[dict[str, Any]]:
  """Trains every planned run in sequence, appending a row per finished run (scored on
  `scaling.eval_tasks` first: lm/scaling/sweep_tasks.py); returns the table. `cache_dir`: see
  `compile_cache.use`."""
  compile_cache.use(cache_dir)
  sweep_tasks.start(config, workdir)
  for _ in range(rounds(config)):
    vocab, pending, prog = plan_round(config, workdir, 1)
    for plan in pending:
      row = _train_here(config, workdir, plan, vocab, prog, runner)
      if row is None:
        return results.read_results(workdir)
      if row and config.scaling.eval_tasks and table_of(plan) == results.RESULTS_JSONL:
        row |= sweep_tasks.score_run(config, workdir, os.path.join(workdir, plan.name))
      if row:
        results.append_row(workdir, row, table_of(plan))
    if last_round(pending):
      break
  sweep_tasks.fill_missing(config, workdir)
  return results.read_results(workdir)


def train_run(
  config,
  workdir: str,
  name: str,
  runner: Runner = loop.train_and_evaluate,
  cache_dir: str | None = None,
) -> bool:
  """Trains the planned run `name` alone in this process (a scheduler's task: e.g. a Slurm
  array task, launch/slurm_sweep.py) as `run_sweep` would, and appends its row; a run the
  table holds already is skipped. Returns whether it finished (False: it stopped before its
  last step and resumes when run again). `cache_dir`: see `compile_cache.use`."""
  compile_cache.use(cache_dir)
  vocab = vocab_size(config)
  plan = {p.name: p for p in sweep_runs(config, vocab, workdir)[1]}.get(name)
  if plan is None:
    raise ValueError(f"--run={name} is not a run of this sweep's plan (see {grid.PLAN_FILE})")
  rows = results.read_results(workdir, table_of(plan))
  if plan.adds_row and results.finished(config, [plan], rows):
    log.info("%s is in %s already: nothing to train", name, table_of(plan))
    return True
  row = _train_here(config, workdir, plan, vocab, progress.Progress([plan], [], config, 1), runner)
  if row:
    with _locked(workdir):  # other tasks append to the same table
      results.append_row(workdir, row, table_of(plan))
  return row is not None


@contextlib.contextmanager
def _locked(workdir: str) -> Iterator[None]:
  """Holds an exclusive lock on `<workdir>/results.lock` (fcntl: NFS v4 and Lustre honour it)."""
  with open(os.path.join(workdir, "results.lock"), "a") as f:
    fcntl.lockf(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.lockf(f, fcntl.LOCK_UN)


def _train_here(
  config, workdir: str, plan: grid.RunPlan, vocab: int, prog: progress.Progress, runner: Runner
) -> dict[str, Any] | None:
  """Trains `plan` in this process; returns its results row ({} for a stable run, which has
  none), or None where it stopped before its last step."""
  run_cfg = grid.run_config(config, plan)
  log.info("%s", prog.started(plan))
  path = run_dir(workdir, plan)
  t0 = time.perf_counter()
  summary = runner(run_cfg, path)
  if summary["step"] < plan.steps:
    log.warning(
      "%s stopped at step %d of %d; run the sweep again to continue",
      plan.name,
      summary["step"],
      plan.steps,
    )
    return None
  log.info("%s", prog.finished(plan, time.perf_counter() - t0))
  if not plan.adds_row:
    return {}
  return results.result_row(plan, run_cfg, {**summary, "vocab_size": vocab}, path, workdir)


def run_verification(
  config, workdir: str, runner: Runner = loop.train_and_evaluate, cache_dir: str | None = None
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
  rows = [before["row"], *before.get("repeats", [])] if before else []
  pending = _pending(config, runs, rows)
  sweep_rows = results.read_results(workdir)  # their speed estimates the time
  log.info(
    "verification of the prediction at C = %.4g (N_opt %.4g): %s, learning rate %.3g (%s)",
    fit["prediction"]["flops"],
    fit["prediction"]["n_opt"],
    next(r for r in runs if r.adds_row).name,
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
      rows.append(row)
  finished = results.finished(config, runs, rows)
  point, *seeded = [r for r in runs if r.adds_row]
  row = finished[point.name]
  repeats = [finished[r.name] for r in seeded]
  comparison = verify.compare(fit["prediction"], row, fit["columns"], repeats)
  return verify.save(workdir, comparison, row, lr_source, repeats)


def train_argv(train_command: Sequence[str], path: str, plan: grid.RunPlan) -> list[str]:
  """`train_command` (the entry point that trains one run) with the workdir `path` and the
  config overrides of `plan`."""
  flags = [f"--config.{k}={v}" for k, v in grid.run_overrides(plan).items()]
  return [*train_command, f"--workdir={path}", *flags]


def commands(config, train_command: Sequence[str], workdir: str) -> list[str]:
  """One command per planned run (seed repeats included): `train_command` (the entry point that
  trains one run, with the sweep's config and overrides) followed by the run's workdir and
  overrides."""
  if config.scaling.method != "independent":
    raise ValueError(
      f"config.scaling.method={config.scaling.method!r}: a branch starts from a "
      "copy of its stable run's checkpoint, which these commands do not make; "
      "emit_commands lists the 'independent' method's runs only (every method's "
      "rounds: --launcher=slurm --dry_run)"
    )
  if config.scaling.lr_grid:
    raise ValueError(
      f"config.scaling.lr_grid={config.scaling.lr_grid}: the runs depend on the "
      "trials' losses; emit_commands lists a sweep without learning-rate trials "
      "(with them: --launcher=slurm --dry_run)"
    )
  return [
    " ".join(train_argv(train_command, os.path.join(workdir, plan.name), plan))
    for plan in sweep_runs(config, vocab_size(config), workdir)[1]
  ]
