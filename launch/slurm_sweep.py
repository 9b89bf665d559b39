"""A scaling sweep handed to Slurm: each round of lm/scaling/sweep.py becomes job arrays, one
array task per run, that train each run as the local sweep would and add its row.

    python -m experiments.sweep --config=experiments/configs/scaling_cpu.py \\
        --workdir=/shared/sweeps/cpu --launcher=slurm --slurm=--partition=gpu

A task runs `experiments.sweep ... --run=<name>` (`sweep.train_run`): the same run name, config
hash, run directory and row as the local sweep's. A submission plans the round as the local
sweep does (`sweep.plan_round`) and submits its pending runs:
- the runs that start from nothing: one array;
- a run that starts from another's checkpoint (a cooldown branch; a stable run that continues a
  learning-rate trial's) while that one still trains: one array per parent, each after its
  parent's task (`--dependency=afterok:<job>_<task>`);
- while learning-rate trials train: a planner job after them (afterok) that runs the same
  command again, which plans the runs at the chosen rates and submits them.
Running the command again submits only what is missing: a run with its row is skipped, one that
is queued or running (squeue, by the sweep's job name and the record, launch/slurm_jobs.py) is
left alone, a failed one is submitted again and resumes from its checkpoint; jobs left waiting
on a failed dependency are cancelled and submitted again with the rest.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import shlex
from collections.abc import Sequence

from launch import slurm, slurm_jobs
from lm.scaling import grid, results, sweep, verify

SCRIPTS_DIR = "slurm_scripts"  # in the workdir: the scripts submitted


@dataclasses.dataclass(frozen=True)
class Job:
  """A job to submit: an array of `runs`, or a single job (`array` False) of one entry of
  slurm_jobs; `after`: the runs whose tasks it waits for."""

  runs: tuple[str, ...]
  after: tuple[str, ...] = ()
  array: bool = True


@dataclasses.dataclass(frozen=True)
class Launch:
  """How the jobs run: `slurm_args` (launch.slurm's parser: partition, time, GPUs per task,
  ...), the sweep's own arguments (`--config`, its overrides, `--workdir`) and the flags that
  make a planner job submit the next round (`--launcher=slurm` and the `--slurm` flags)."""

  slurm_args: argparse.Namespace
  sweep_args: tuple[str, ...]
  planner_flags: tuple[str, ...]


def slurm_args(flags: Sequence[str]) -> argparse.Namespace:
  """launch.slurm's arguments from `flags` (e.g. ['--partition=gpu']); a sweep's task trains on
  one GPU unless `--gpus_per_node` says otherwise."""
  p = slurm.parser()
  p.set_defaults(gpus_per_node=1, job_name="sweep")
  return p.parse_args(list(flags))


def trained(workdir: str, plan: grid.RunPlan) -> bool:
  """Whether a stable run (which adds no row) has trained all its steps already."""
  path = os.path.join(workdir, plan.name)
  return not plan.adds_row and results.logged_summary(path)["step"] >= plan.steps


def plan_jobs(
  pending: Sequence[grid.RunPlan], active: dict[str, str], last: bool, workdir: str
) -> list[Job]:
  """The jobs that train `pending` but its runs `active` (queued or running: by name), parents
  before the runs that start from their checkpoints; a planner job after the trials where the
  round is not the `last`."""
  todo = [p for p in pending if p.name not in active and not trained(workdir, p)]
  names = {p.name for p in todo}
  roots = tuple(p.name for p in todo if p.branch_of not in names | set(active))
  jobs = [Job(roots)] if roots else []
  children: dict[str, list[str]] = {}
  for p in todo:
    if p.name not in roots:
      children.setdefault(p.branch_of, []).append(p.name)
  placed = set(roots) | set(active)
  while children:
    ready = [parent for parent in children if parent in placed]
    assert ready, f"runs wait for runs never submitted: {children}"  # parents come from todo
    for parent in ready:
      jobs.append(Job(tuple(children[parent]), after=(parent,)))
      placed |= set(children.pop(parent))
  if not last and slurm_jobs.PLANNER not in active:
    trials = tuple(p.name for p in pending if p.lr_trial and p.name in placed)
    jobs.append(Job((slurm_jobs.PLANNER,), after=trials, array=False))
  return jobs


def script(launch: Launch, job: Job, name: str) -> str:
  """`job`'s batch script: an array task trains `runs[SLURM_ARRAY_TASK_ID]`; the planner runs
  the sweep's command again; the verifier trains the verification run."""
  args = launch.slurm_args
  sweep_cmd = ["experiments.sweep", *launch.sweep_args]
  if job.array:
    runs = " ".join(shlex.quote(r) for r in job.runs)
    select = f'runs=({runs})\nrun="${{runs[$SLURM_ARRAY_TASK_ID]}}"\n'
    return slurm.render(args, [*sweep_cmd, '--run="$run"'], len(job.runs), select, name)
  if job.runs == (slurm_jobs.VERIFIER,):
    return slurm.render(args, [*sweep_cmd, "--verify"], job_name=name)
  no_gpu = copy.copy(args)  # the planner only plans and submits
  no_gpu.gpus_per_node = 0
  return slurm.render(no_gpu, [*sweep_cmd, *launch.planner_flags], job_name=name)


def _active(workdir: str, name: str) -> tuple[dict[str, str], list[str]]:
  """The recorded runs whose latest job is queued or running (by name: its job reference), and
  the jobs that wait on a failed dependency (never to start). This process' own job (a planner)
  is neither."""
  refs = slurm_jobs.latest_refs(slurm_jobs.read_jobs(workdir))
  if not refs:
    return {}, []
  queued = slurm_jobs.queue(name)
  own = os.environ.get("SLURM_JOB_ID")
  stuck = [ref for ref, (_, reason) in queued.items() if reason == slurm_jobs.NEVER]
  active = {
    run: ref for run, ref in refs.items() if ref in queued and ref not in stuck and ref != own
  }
  return active, stuck


def _describe(job: Job, refs: dict[str, str]) -> str:
  """'sbatch --dependency=afterok:<refs> <what>' for a dry run."""
  after = ":".join(refs.get(r, f"<{r}>") for r in job.after)
  what = f"array of {len(job.runs)}" if job.array else job.runs[0]
  return f"# sbatch{f' --dependency=afterok:{after}' if after else ''}  ({what})"


def submit(jobs: list[Job], launch: Launch, workdir: str, active: dict[str, str]) -> list[str]:
  """Submits `jobs` in order (a job's dependencies on the tasks of those before it or of
  `active` runs), recording each; returns a line per job submitted."""
  name = slurm_jobs.job_name(launch.slurm_args.job_name, workdir)
  refs = dict(active)
  os.makedirs(os.path.join(workdir, SCRIPTS_DIR), exist_ok=True)
  lines = []
  for job in jobs:
    path = os.path.join(workdir, SCRIPTS_DIR, f"{job.runs[0].strip('<>')}.sbatch")
    with open(path, "w") as f:
      f.write(script(launch, job, name))
    after = "afterok:" + ":".join(refs[r] for r in job.after) if job.after else ""
    job_id = slurm_jobs.sbatch(path, after, workdir, list(job.runs), job.array)
    for task, run in enumerate(job.runs):
      refs[run] = f"{job_id}_{task}" if job.array else job_id
    lines.append(f"submitted job {job_id} ({', '.join(job.runs)}){f' after {after}' * bool(after)}")
  return lines


def submit_round(config, workdir: str, launch: Launch, workers: int, dry_run: bool) -> list[str]:
  """Plans the sweep's round (`sweep.plan_round`) and submits what it lacks (`plan_jobs`), or
  with `dry_run` returns the scripts that would be submitted; returns lines to print."""
  _, pending, _ = sweep.plan_round(config, workdir, workers)
  name = slurm_jobs.job_name(launch.slurm_args.job_name, workdir)
  active, stuck = _active(workdir, name)
  jobs = plan_jobs(pending, active, sweep.last_round(pending), workdir)
  if dry_run:
    return [f"{_describe(job, active)}\n{script(launch, job, name)}" for job in jobs]
  slurm_jobs.cancel(stuck)
  lines = submit(jobs, launch, workdir, active)
  skipped = [run for run in active if run != slurm_jobs.PLANNER]
  if skipped:
    lines.append(f"queued or running already, not submitted again: {', '.join(skipped)}")
  return lines or ["nothing to submit: every run of the round has its row"]


def submit_verification(config, workdir: str, launch: Launch, dry_run: bool) -> list[str]:
  """Submits one job that trains the verification run of `<workdir>/fit.json` (its stable run
  and branch in turn, `experiments.sweep --verify`), unless one is queued or running."""
  verify.read_fit(workdir, config)  # fails here, not in the job, without a prediction
  name = slurm_jobs.job_name(launch.slurm_args.job_name, workdir)
  job = Job((slurm_jobs.VERIFIER,), array=False)
  if dry_run:
    return [script(launch, job, name)]
  active, _ = _active(workdir, name)
  if slurm_jobs.VERIFIER in active:
    return [f"the verification is queued or running already: job {active[slurm_jobs.VERIFIER]}"]
  return submit([job], launch, workdir, active)
