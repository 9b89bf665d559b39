"""A sweep's Slurm jobs: the record of what was submitted (`<workdir>/slurm_jobs.jsonl`) and what
Slurm says of it (`squeue` for the queue, `sacct` for what has ended), by run name.

A record line is one submitted job: its id and its tasks, the run each array task trains by task
id, or for a single job one entry (`PLANNER` or `VERIFIER`) under task 0. A line is written
the moment `sbatch` answers, so a submission cut short leaves a record of what it did submit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from typing import Any

JOBS_FILE = "slurm_jobs.jsonl"
PLANNER = "<next round>"  # a job that runs the sweep's command again to submit its next round
VERIFIER = "<verification>"  # a job that trains the verification run (`--verify`)
# squeue's reason for a job whose dependency failed: it will never start.
NEVER = "DependencyNeverSatisfied"
# sacct's states of a job that ended without finishing.
FAILED_STATES = (
  "FAILED",
  "TIMEOUT",
  "CANCELLED",
  "NODE_FAIL",
  "OUT_OF_MEMORY",
  "PREEMPTED",
  "BOOT_FAIL",
  "DEADLINE",
)


def job_name(prefix: str, workdir: str) -> str:
  """The job name of every job of the sweep in `workdir`: `prefix`, the workdir's name and a
  hash of its path (two sweeps never share one)."""
  path = os.path.abspath(workdir)
  digest = hashlib.sha256(path.encode()).hexdigest()[:6]
  return f"{prefix}-{os.path.basename(path.rstrip('/'))}-{digest}"


def read_jobs(workdir: str) -> list[dict[str, Any]]:
  """The record's jobs, oldest first ([] before the first submission)."""
  path = os.path.join(workdir, JOBS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def latest_refs(jobs: list[dict[str, Any]]) -> dict[str, str]:
  """Each run's (or PLANNER's, VERIFIER's) latest job: `<job>_<task>` for an array task,
  `<job>` for a single job."""
  refs = {}
  for job in jobs:
    for task, run in job["tasks"].items():
      refs[run] = f"{job['job_id']}_{task}" if job["array"] else str(job["job_id"])
  return refs


def sbatch(script: str, dependency: str, workdir: str, tasks: dict[int, str], array: bool) -> str:
  """Submits `script` (after `dependency`, e.g. 'afterok:12_0', '' for none), records the job
  and its `tasks` (task id: run) in the workdir's record and returns its id."""
  after = [f"--dependency={dependency}"] if dependency else []
  done = _run(["sbatch", "--parsable", *after, script])
  if done.returncode:
    raise RuntimeError(f"sbatch {script} failed ({done.returncode}): {done.stderr.strip()}")
  job_id = done.stdout.strip().split(";")[0]  # --parsable: '<id>' or '<id>;<cluster>'
  with open(os.path.join(workdir, JOBS_FILE), "a") as f:
    f.write(json.dumps({"job_id": job_id, "tasks": tasks, "array": array}) + "\n")
  return job_id


def _run(argv: list[str]) -> subprocess.CompletedProcess:
  """Runs a Slurm command; one that is not on PATH ends the sweep with a line saying so."""
  try:
    return subprocess.run(argv, capture_output=True, text=True, check=False)
  except FileNotFoundError as e:
    raise RuntimeError(
      f"{argv[0]} is not on PATH: --launcher=slurm and --status run where Slurm's commands "
      "are (a cluster's login node)"
    ) from e


def _lines(argv: list[str]) -> list[list[str]]:
  """`argv`'s output lines split at '|'; its error ends the sweep with Slurm's message."""
  done = _run(argv)
  if done.returncode:
    raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()}")
  return [line.split("|") for line in done.stdout.splitlines() if line.strip()]


def queue(name: str) -> dict[str, tuple[str, str]]:
  """The queued and running jobs named `name`, one array task a line: (state, reason) by
  `<job>_<task>` (or `<job>`)."""
  argv = ["squeue", "--noheader", "--array", f"--name={name}", "--format=%i|%T|%r"]
  return {ref: (state, reason) for ref, state, reason in _lines(argv)}


def ended(refs: list[str]) -> dict[str, str]:
  """sacct's state (its first word: 'CANCELLED by 0' is CANCELLED) of each job or array task of
  `refs` that Slurm accounts for."""
  if not refs:
    return {}
  jobs = sorted({ref.split("_")[0] for ref in refs})
  argv = ["sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={','.join(jobs)}"]
  rows = _lines([*argv, "--format=JobID,State"])
  return {ref: state.split()[0] for ref, state in rows if ref in refs}


def cancel(refs: list[str]) -> None:
  """Cancels the jobs (or array tasks) `refs`: those whose dependency failed wait forever."""
  if refs:
    subprocess.run(["scancel", *refs], check=False)
