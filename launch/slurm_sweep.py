"""A scaling sweep handed to Slurm: each round of lm/scaling/sweep.py becomes job arrays, one
array task per run, that train each run as the local sweep would and add its row.

    python -m experiments.sweep --config=experiments/configs/scaling_gpu.py \\
        --workdir=/shared/sweeps/gpu --launcher=slurm --slurm=--partition=gpu

A task runs `experiments.sweep ... --run=<name>` (`sweep.train_run`): the same run name, config
hash, run directory and row as the local sweep's. A submission plans the round as the local
sweep does (`sweep.plan_round`) and submits its pending runs:
- the runs that start from nothing: one array;
- the runs that start from the checkpoint of one of those (a cooldown branch; a stable run that
  continues a learning-rate trial's): arrays by rank, the k-th of each parent as the task of
  its parent's id, each task after its parent's (`--dependency=aftercorr:<first array>`);
- a run whose parent was queued by an earlier submission: an array per parent, after its
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
import re
import shlex
from collections.abc import Sequence

from launch import slurm, slurm_jobs
from lm.scaling import grid, results, sweep, verify

SCRIPTS_DIR = "slurm_scripts"  # in the workdir: the scripts submitted


@dataclasses.dataclass(frozen=True)
class Job:
  """A job to submit: an array whose task `ids[k]` trains `runs[k]` (ids 0, 1, ... unless
  given), or a single job (`array` False) of one entry of slurm_jobs. It waits for the tasks of
  the runs `after` (afterok), or with `corresponding` each task for the same task of the
  round's first array (aftercorr)."""

  runs: tuple[str, ...]
  ids: tuple[int, ...] = ()
  after: tuple[str, ...] = ()
  corresponding: bool = False
  array: bool = True

  @property
  def tasks(self) -> dict[int, str]:
    """The run of each task, by task id."""
    return dict(zip(self.ids or range(len(self.runs)), self.runs, strict=True))


@dataclasses.dataclass(frozen=True)
class Launch:
  """How the jobs run: `slurm_args` (launch.slurm's parser: partition, time, GPUs per task,
  ...), the sweep's own arguments (`--config`, its overrides, `--workdir`) and the flags that
  make a planner job submit the next round (`--launcher=slurm` and the `--slurm` flags)."""

  slurm_args: argparse.Namespace
  sweep_args: tuple[str, ...]
  planner_flags: tuple[str, ...]


def slurm_args(flags: Sequence[str], workdir: str) -> argparse.Namespace:
  """launch.slurm's arguments from `flags` (e.g. ['--partition=gpu']); a sweep's task trains on
  one GPU unless `--gpus_per_node` says otherwise, its log in `<workdir>/slurm_logs` unless
  `--log_dir` says otherwise. ValueError, in one line, for a flag it does not know or a bad
  value."""
  p = slurm.parser()
  p.exit_on_error = False
  p.set_defaults(gpus_per_node=1, job_name="sweep", log_dir=os.path.join(workdir, "slurm_logs"))
  try:
    args, unknown = p.parse_known_args(list(flags))
  except argparse.ArgumentError as e:
    raise ValueError(f"--slurm: {e}") from None
  if unknown:
    raise ValueError(
      f"--slurm={unknown[0]}: not a flag of launch.slurm (`python -m launch.slurm --help` "
      "lists them)"
    )
  return args


def trained(workdir: str, plan: grid.RunPlan) -> bool:
  """Whether a stable run (which adds no row) has trained all its steps already."""
  path = os.path.join(workdir, plan.name)
  return not plan.adds_row and results.logged_summary(path)["step"] >= plan.steps


def _by_rank(todo: Sequence[grid.RunPlan], roots: tuple[str, ...]) -> list[Job]:
  """The runs of `todo` that start from a run of `roots` (the first array): array k holds each
  root's k-th, as the task of its root's id, after that task (aftercorr)."""
  ids = {name: i for i, name in enumerate(roots)}
  ranks: dict[int, dict[int, str]] = {}  # rank: {task id: run}
  seen: dict[str, int] = {}  # a root's branches so far
  for p in todo:
    if p.branch_of in ids:
      k = seen[p.branch_of] = seen.get(p.branch_of, -1) + 1
      ranks.setdefault(k, {})[ids[p.branch_of]] = p.name
  return [Job(tuple(r.values()), tuple(r), corresponding=True) for _, r in sorted(ranks.items())]


def plan_jobs(
  pending: Sequence[grid.RunPlan], active: dict[str, str], last: bool, workdir: str
) -> list[Job]:
  """The jobs that train `pending` but its runs `active` (queued or running: by name), a run
  that starts from another's checkpoint after it: the runs that start from nothing in one array,
  those that start from one of them in arrays by rank (aftercorr), the rest after their parent's
  task (afterok, an array per parent); where the round is not the `last`, a planner job after
  the trials."""
  todo = [p for p in pending if p.name not in active and not trained(workdir, p)]
  names = {p.name for p in todo}
  roots = tuple(p.name for p in todo if p.branch_of not in names | set(active))
  jobs = [Job(roots), *_by_rank(todo, roots)] if roots else []
  placed = {run for job in jobs for run in job.runs} | set(active)
  children: dict[str, list[str]] = {}
  for p in todo:
    if p.name not in placed:
      children.setdefault(p.branch_of, []).append(p.name)
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


def _dense(ids: Sequence[int]) -> bool:
  """Whether task `ids` are 0, 1, ..., n-1."""
  return list(ids) == list(range(len(ids)))


def _array_spec(ids: Sequence[int]) -> str:
  """sbatch's --array for task `ids`: '0-4' for 0 to 4, else '0,2,5'."""
  return f"0-{len(ids) - 1}" if _dense(ids) else ",".join(map(str, ids))


def script(launch: Launch, job: Job, name: str) -> str:
  """`job`'s batch script: an array task trains its run (`runs[SLURM_ARRAY_TASK_ID]`); the
  planner runs the sweep's command again; the verifier trains the verification run."""
  args = launch.slurm_args
  sweep_cmd = ["experiments.sweep", *launch.sweep_args]
  if job.array:
    dense = _dense(list(job.tasks))  # else bash's sparse array: ([0]=a [3]=b)
    runs = " ".join(
      shlex.quote(r) if dense else f"[{i}]={shlex.quote(r)}" for i, r in job.tasks.items()
    )
    select = f'runs=({runs})\nrun="${{runs[$SLURM_ARRAY_TASK_ID]}}"\n'
    command = [*sweep_cmd, '--run="$run"']
    return slurm.render(args, command, _array_spec(list(job.tasks)), select, name)
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


def _dependency(job: Job, refs: dict[str, str], first: str, now: set[str]) -> str:
  """`job`'s --dependency: aftercorr on the round's `first` array, or afterok on the tasks of
  its `after` runs (`refs`: by run), a whole array where it was submitted `now`."""
  if job.corresponding:
    return f"aftercorr:{first}"
  on = []
  for run in job.after:
    ref = refs.get(run, f"<{run}>")
    whole = ref.split("_")[0]
    on.append(whole if whole in now else ref)
  return "afterok:" + ":".join(dict.fromkeys(on)) if on else ""


def submit(
  jobs: list[Job], launch: Launch, workdir: str, active: dict[str, str], dry_run: bool = False
) -> list[str]:
  """Submits `jobs` in order (each after the tasks it waits for: of the jobs before it or of
  `active` runs), recording each; returns a line per job submitted. `dry_run`: submits nothing,
  returns each job's sbatch line (the jobs numbered <1>, <2>, ... in place of ids) and script."""
  name = slurm_jobs.job_name(launch.slurm_args.job_name, workdir)
  refs, now, first, lines = dict(active), set(), "", []
  if not dry_run:
    os.makedirs(os.path.join(workdir, SCRIPTS_DIR), exist_ok=True)
    os.makedirs(launch.slurm_args.log_dir, exist_ok=True)  # Slurm writes no log where it is not
  for k, job in enumerate(jobs, 1):
    text = script(launch, job, name)
    after = _dependency(job, refs, first, now)
    if dry_run:
      job_id = f"<{k}>"
      lines.append(f"# {job_id}: sbatch{f' --dependency={after}' * bool(after)}\n{text}")
    else:
      first_run = re.sub(r"[^\w.]+", "", job.runs[0])  # '<next round>': 'nextround'
      path = os.path.join(workdir, SCRIPTS_DIR, f"{first_run}-{k}.sbatch")
      with open(path, "w") as f:
        f.write(text)
      job_id = slurm_jobs.sbatch(path, after, workdir, job.tasks, job.array)
      lines.append(f"submitted job {job_id}: {', '.join(job.runs)}{f' ({after})' * bool(after)}")
    first, now = first or job_id, now | {job_id}
    refs |= {run: f"{job_id}_{i}" if job.array else job_id for i, run in job.tasks.items()}
  return lines


def submit_round(config, workdir: str, launch: Launch, workers: int, dry_run: bool) -> list[str]:
  """Plans the sweep's round (`sweep.plan_round`) and submits what it lacks (`plan_jobs`), or
  with `dry_run` returns the scripts that would be submitted; returns lines to print."""
  _, pending, _ = sweep.plan_round(config, workdir, workers, write=not dry_run)
  name = slurm_jobs.job_name(launch.slurm_args.job_name, workdir)
  active, stuck = _active(workdir, name)
  jobs = plan_jobs(pending, active, sweep.last_round(pending), workdir)
  if dry_run:
    return submit(jobs, launch, workdir, active, dry_run=True)
  slurm_jobs.cancel(stuck)
  lines = [f"cancelled {', '.join(stuck)}: each waited on a failed run"] if stuck else []
  lines += submit(jobs, launch, workdir, active)
  skipped = [run for run in active if run != slurm_jobs.PLANNER]
  if skipped:
    lines.append(f"queued or running already, not submitted again: {', '.join(skipped)}")
  return lines or ["nothing to submit: every run of the round has its row"]


def submit_verification(config, workdir: str, launch: Launch, dry_run: bool) -> list[str]:
  """Submits one job that trains the verification run of `<workdir>/fit.json` (its stable run
  and branch in turn, `experiments.sweep --verify`), unless one is queued or running."""
  verify.read_fit(workdir, config)  # fails here, not in the job, without a prediction
  if verify.load(workdir) and not dry_run:
    return [f"the verification is done already: {os.path.join(workdir, verify.FILE)}"]
  name = slurm_jobs.job_name(launch.slurm_args.job_name, workdir)
  job = Job((slurm_jobs.VERIFIER,), array=False)
  if dry_run:
    return [script(launch, job, name)]
  active, _ = _active(workdir, name)
  if slurm_jobs.VERIFIER in active:
    return [f"the verification is queued or running already: job {active[slurm_jobs.VERIFIER]}"]
  return submit([job], launch, workdir, active)
