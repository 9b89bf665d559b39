"""A stand-in Slurm cluster for tests: `sbatch`, `squeue`, `sacct`, `scontrol`, `scancel` and
`srun` executables (`install` writes them into a directory to put first on PATH) that keep
the queue in `<dir>/state.json`, and `run_queue`, which runs the queued tasks on this machine,
one at a time in submission order, each once its `--dependency=afterok:...` is met.

Faithful where the sweep relies on it: `sbatch --parsable` answers the job id; `#SBATCH
--array=0-N` makes N+1 tasks, each run with SLURM_ARRAY_JOB_ID, SLURM_ARRAY_TASK_ID and a
SLURM_JOB_ID of its own (`--array=0,3,7` too); `afterok:J` waits for every task of J,
`afterok:J_T` for one, `aftercorr:J` each task for J's task of the same id; a job
whose dependency failed stays PENDING with reason DependencyNeverSatisfied; `squeue --array`
lists one task a line; `sacct --allocations` the tasks that ended; `scontrol requeue` puts a task
back in the queue. Faults: FAKE_SBATCH_FAIL=k fails the k-th sbatch call (1-based, counting
every call); FAKE_SRUN_FAIL_ONCE=<run name> makes the first task that trains that run stop after
2 steps (a checkpoint saved) and fail, as a node lost mid-run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

COMMANDS = ("sbatch", "squeue", "sacct", "scontrol", "scancel")
_SRUN = """#!/bin/bash
shift  # --kill-on-bad-exit=1
marker="$FAKE_SLURM_DIR/failed_once"
if [ -n "${FAKE_SRUN_FAIL_ONCE:-}" ] && [ ! -e "$marker" ] \\
  && [[ " $* " == *" --run=$FAKE_SRUN_FAIL_ONCE "* ]]; then
  touch "$marker"
  "$@" --config.train.stop_after_steps=2
  exit 1
fi
exec "$@"
"""


def install(directory: str) -> dict[str, str]:
  """Writes the stand-ins into `directory`; returns the environment that puts them first on
  PATH with their state in `directory`."""
  here = os.path.dirname(os.path.abspath(__file__))
  for command in COMMANDS:
    path = os.path.join(directory, command)
    with open(path, "w") as f:
      f.write(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {here!r})\n"
        f"import fake_slurm\nsys.exit(fake_slurm.main({command!r}, sys.argv[1:]))\n"
      )
    os.chmod(path, 0o755)
  with open(os.path.join(directory, "srun"), "w") as f:
    f.write(_SRUN)
  os.chmod(os.path.join(directory, "srun"), 0o755)
  return {"PATH": f"{directory}:{os.environ['PATH']}", "FAKE_SLURM_DIR": directory}


def load(directory: str) -> dict:
  """The cluster's state: its jobs (id, name, script, dependency, tasks) and sbatch calls."""
  path = os.path.join(directory, "state.json")
  if not os.path.exists(path):
    return {"next_id": 100, "calls": 0, "jobs": []}
  with open(path) as f:
    return json.load(f)


def _save(directory: str, state: dict) -> None:
  with open(os.path.join(directory, "state.json"), "w") as f:
    json.dump(state, f, indent=1)


def _tasks(state: dict):
  """(job, task index, task) of every task, in submission order."""
  for job in state["jobs"]:
    for index, task in job["tasks"].items():
      yield job, index, task


def _ref(job: dict, index: str) -> str:
  return f"{job['id']}_{index}" if job["array"] else str(job["id"])


def _dependency(state: dict, job: dict, index: str) -> str:
  """'ok' (met), 'wait' or 'never' for task `index` of `job`: afterok on whole jobs or tasks,
  or aftercorr (each task after the same task of another array)."""
  if not job["dependency"]:
    return "ok"
  kind, *refs = job["dependency"].split(":")
  assert kind in ("afterok", "aftercorr"), job["dependency"]
  states = []
  for ref in refs:
    job_id, _, task_id = ref.partition("_")
    task_id = index if kind == "aftercorr" else task_id
    for other, i, task in _tasks(state):
      if str(other["id"]) == job_id and (not task_id or i == task_id):
        states.append(task["state"])
  if any(s in ("FAILED", "CANCELLED") for s in states):
    return "never"
  return "ok" if states and all(s == "COMPLETED" for s in states) else "wait"


def array_ids(spec: str) -> list[int]:
  """The task ids of sbatch's --array spec: '0-3', '0,2,5' or a mix."""
  ids = []
  for part in spec.split(","):
    first, _, last = part.partition("-")
    ids += range(int(first), int(last or first) + 1)
  return ids


def _sbatch(directory: str, state: dict, argv: list[str]) -> int:
  state["calls"] += 1
  if state["calls"] == int(os.environ.get("FAKE_SBATCH_FAIL", "0")):
    _save(directory, state)
    print("sbatch: error: Batch job submission failed: Socket timed out", file=sys.stderr)
    return 1
  assert argv[0] == "--parsable", argv
  dependency = next((a.split("=", 1)[1] for a in argv if a.startswith("--dependency=")), "")
  script = argv[-1]
  with open(script) as f:
    text = f.read()
  name = re.findall(r"^#SBATCH --job-name=(\S+)$", text, re.M)[0]
  array = re.findall(r"^#SBATCH --array=(\S+)$", text, re.M)
  ids = array_ids(array[0]) if array else [0]
  job_id, state["next_id"] = state["next_id"], state["next_id"] + len(ids) + 1
  tasks = {str(i): {"state": "PENDING", "job_id": job_id + 1 + k} for k, i in enumerate(ids)}
  state["jobs"].append(
    {
      "id": job_id,
      "name": name,
      "script": script,
      "dependency": dependency,
      "array": bool(array),
      "tasks": tasks,
    }
  )
  _save(directory, state)
  print(job_id)
  return 0


def main(command: str, argv: list[str]) -> int:
  """The stand-in `command` with arguments `argv`."""
  directory = os.environ["FAKE_SLURM_DIR"]
  state = load(directory)
  if command == "sbatch":
    return _sbatch(directory, state, argv)
  if command == "squeue":
    assert "--array" in argv and "--format=%i|%T|%r" in argv, argv
    name = next(a.split("=", 1)[1] for a in argv if a.startswith("--name="))
    for job, index, task in _tasks(state):
      if job["name"] == name and task["state"] in ("PENDING", "RUNNING"):
        waits = _dependency(state, job, index)
        reason = {"never": "DependencyNeverSatisfied", "wait": "Dependency"}.get(waits, "None")
        print(
          f"{_ref(job, index)}|{task['state']}|{reason if task['state'] == 'PENDING' else 'None'}"
        )
    return 0
  if command == "sacct":
    assert "--allocations" in argv and "--format=JobID,State" in argv, argv
    ids = next(a.split("=", 1)[1] for a in argv if a.startswith("--jobs=")).split(",")
    for job, index, task in _tasks(state):
      if str(job["id"]) in ids and task["state"] not in ("PENDING",):
        print(f"{_ref(job, index)}|{task['state']}")
    return 0
  if command == "scancel":
    for job, index, task in _tasks(state):
      if _ref(job, index) in argv:
        task["state"] = "CANCELLED"
    _save(directory, state)
    return 0
  assert command == "scontrol" and argv[0] == "requeue", argv
  for _, _, task in _tasks(state):
    if str(task["job_id"]) == argv[1]:
      task["state"] = "REQUEUED"
  _save(directory, state)
  return 0


def run_queue(directory: str, env: dict[str, str]) -> list[str]:
  """Runs the queued tasks whose dependencies are met, one at a time in submission order (a
  task may submit more: they run too), until none is left that can start; returns the task
  references run, in order. A task's output goes to `<directory>/<ref>.out`."""
  ran = []
  while True:
    state = load(directory)
    ready = [
      (job, index, task)
      for job, index, task in _tasks(state)
      if task["state"] in ("PENDING", "REQUEUED") and _dependency(state, job, index) == "ok"
    ]
    if not ready:
      return ran
    job, index, task = ready[0]
    task["state"] = "RUNNING"
    _save(directory, state)
    ref = _ref(job, index)
    task_env = {
      **env,
      "SLURM_JOB_ID": str(task["job_id"]),
      "SLURM_ARRAY_JOB_ID": str(job["id"]),
      "SLURM_ARRAY_TASK_ID": index,
      "FAKE_SLURM_DIR": directory,
    }
    with open(os.path.join(directory, f"{ref}.out"), "a") as out:
      status = subprocess.run(
        ["bash", job["script"]], env=task_env, stdout=out, stderr=out, check=False
      )
    state = load(directory)
    task = state["jobs"][[j["id"] for j in state["jobs"]].index(job["id"])]["tasks"][index]
    if task["state"] == "RUNNING":  # else requeued by the script: it runs again
      task["state"] = "COMPLETED" if status.returncode == 0 else "FAILED"
    else:
      task["state"] = "PENDING"
    _save(directory, state)
    ran.append(ref)
