"""Where a sweep stands (`experiments.sweep --status`): its planned runs done (a row in the
table), running or queued (squeue), failed (sacct) or not submitted, and an ETA.

The ETA spreads the training FLOPs still to go over the runs training at once (those running,
at least one), at the FLOP rate measured on the finished rows (lm/scaling/progress.py).
"""

from __future__ import annotations

import os
from typing import Any

from launch import slurm_jobs
from launch.slurm_sweep import trained
from lm.scaling import grid, lr_search, noise, progress, results, sweep


def _rows(workdir: str) -> list[dict[str, Any]]:
  """Every row the sweep has added: the table's, the trials', the seed repeats'."""
  trials = results.read_results(workdir, lr_search.TRIALS_JSONL)
  return results.read_results(workdir) + trials + noise.read_repeats(workdir)


def _state(ref: str, queued: dict[str, tuple[str, str]], ended: dict[str, str]) -> str:
  """What Slurm says of the job `ref`: 'blocked' (it waits on a failed job), 'running',
  'queued' (with squeue's reason), 'failed' (with sacct's state) or 'not submitted'."""
  state, reason = queued.get(ref, ("", ""))
  if reason == slurm_jobs.NEVER:
    return f"blocked (job {ref}: a run it waits for failed)"
  if state == "RUNNING":
    return f"running (job {ref})"
  if state:
    return f"queued (job {ref}: {state} {reason})"
  if ended.get(ref) in slurm_jobs.FAILED_STATES:
    return f"failed (job {ref}: {ended[ref]})"
  return "not submitted"


def run_states(config, workdir: str, name: str) -> tuple[list[grid.RunPlan], dict[str, str], str]:
  """The runs planned now and each one's state: 'done' or `_state`'s; and that of the planner
  and verification jobs where they are queued or running; and how the plan differs from the
  one the sweep saved (`grid.differs_from_saved`)."""
  points, runs, _ = sweep.sweep_runs(config, sweep.vocab_size(config), workdir)
  differs = grid.differs_from_saved(os.path.join(workdir, grid.PLAN_FILE), points)
  done = results.finished(config, runs, _rows(workdir))
  refs = slurm_jobs.latest_refs(slurm_jobs.read_jobs(workdir))
  queued = slurm_jobs.queue(name) if refs else {}
  ended = slurm_jobs.ended([r for r in refs.values() if r not in queued])
  states = {
    p.name: "done"
    if p.name in done or trained(workdir, p)
    else _state(refs.get(p.name, ""), queued, ended)
    for p in runs
  }
  for job in (slurm_jobs.PLANNER, slurm_jobs.VERIFIER):
    if refs.get(job) in queued:
      states[job] = _state(refs[job], queued, ended)
  return runs, states, differs


def status_lines(config, workdir: str, name: str) -> list[str]:
  """The counts of each state, a line per run not done, and the ETA; first a warning where the
  flags plan other grid points than the sweep saved."""
  runs, states, differs = run_states(config, workdir, name)
  kinds = ("done", "running", "queued", "failed", "blocked", "not submitted")
  counts = {k: sum(states[p.name].startswith(k) for p in runs) for k in kinds}
  lines = [f"warning: {differs}"] if differs else []
  lines.append(f"{len(runs)} runs planned: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
  width = max((len(n) for n in states), default=0)
  lines += [f"  {n:<{width}}  {state}" for n, state in states.items() if state != "done"]
  if config.scaling.lr_grid and any(p.lr_trial for p in runs):
    lines.append("  then the runs at the learning rates the trials choose (planned after them)")
  left = sum(p.flops_to_train for p in runs if states[p.name] != "done")
  rows = _rows(workdir)
  rate = progress.measured_rate(rows, config.scaling.flops_convention)
  source = f"measured on {len(rows)} finished run{'s' * (len(rows) != 1)}"
  if rate is None:
    rate, source = config.scaling.est_flops_per_s, "a guess: scaling.est_flops_per_s"
  at_once = max(1, counts["running"])
  lines.append(
    f"ETA {progress.duration(left / rate / at_once)}: {left:.3g} training FLOPs to go at "
    f"{rate:.3g} FLOP/s per run ({source}), {at_once} at once"
  )
  return lines
