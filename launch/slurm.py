"""Renders a Slurm batch script that trains with one process per GPU, and submits it.

    python -m launch.slurm --nodes=2 --gpus_per_node=8 --partition=gpu --dry-run -- \\
        --config=experiments/configs/gpt2_124m.py --workdir=/shared/runs/gpt2

`--dry-run` prints the script; otherwise it is written to `--script` and passed to `sbatch`.
Every task sees all of its node's GPUs and JAX's Slurm detection (`LM_DISTRIBUTED=auto`) gives
task `SLURM_LOCALID` its own one, the coordinator (the first node) and the process ids.

A job outlives its time limit: `--save_s` seconds before it, Slurm signals the batch script
(USR1), which sends SIGTERM through srun to every task; they save a checkpoint at one agreed step
and exit 75 (lm/training/exit_status.py). The script then requeues the job (`--requeue`),
which runs the same command again and resumes from the workdir, appending to the same log. A
run that stops with 75 otherwise (`train.stop_after_steps`) is requeued too: it trains in
chunks until done.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

from launch import cli
from launch.cli import split_train_args
from lm.training import exit_status

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HEADER = """#!/bin/bash
#SBATCH --job-name={job_name}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node={tasks_per_node}
{gpus}#SBATCH --cpus-per-task={cpus_per_task}
#SBATCH --time={time}
#SBATCH --output={log_dir}/{log_name}.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@{save_s}
{partition}
"""

# After the header: the job's step (`command`, in the background) and what happens at the time
# limit and on exit 75; `select` (bash) runs first, e.g. an array task picks its run.
BODY = """set -uo pipefail
cd {repo}
export LM_DISTRIBUTED=auto
stopping=0
on_time_limit() {{
  stopping=1
  echo "[slurm] time limit near: SIGTERM to every task (they save and exit {preempted})"
  kill -TERM "$step"
}}
trap on_time_limit USR1
{select}srun --kill-on-bad-exit=1 {python} -m {command} &
step=$!
wait "$step"; status=$?
# The trap ends `wait` early (128 + USR1): wait again for srun's own exit status.
if [ "$stopping" = 1 ]; then wait "$step"; status=$?; fi
if [ "$status" -eq {preempted} ] || {{ [ "$stopping" = 1 ] && [ "$status" -ne 0 ]; }}; then
  echo "[slurm] stopped with status $status: requeued, it resumes from the workdir"
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
"""


def render(
  args, command: list[str] | None = None, array: str = "", select: str = "", job_name: str = ""
) -> str:
  """The batch script for `args`: `experiments.train` with `args.train_args` on every GPU of
  `args.nodes` nodes, or `command` (a module and its arguments, '$run' left unquoted) as one
  process of `args.gpus_per_node` GPUs (0: none); with `array` (sbatch's --array, e.g. '0-3' or
  '0,2,5') an array of those tasks, each running `select` first. An array task's SLURM_JOB_ID
  is its own, so it requeues alone."""
  one = command is not None
  if command is None:
    command = ["experiments.train", *args.train_args]
  tasks, gpus = (1, args.gpus_per_node) if one else (args.gpus_per_node, args.gpus_per_node)
  partition = f"#SBATCH --partition={args.partition}" if args.partition else ""
  array_line = f"#SBATCH --array={array}\n" if array else ""
  header = HEADER.format(
    job_name=job_name or args.job_name,
    nodes=1 if one else args.nodes,
    tasks_per_node=tasks,
    gpus=f"#SBATCH --gpus-per-node={gpus}\n" if gpus else "",
    cpus_per_task=args.cpus_per_task,
    time=args.time,
    log_dir=args.log_dir,
    log_name="%x-%A_%a" if array else "%x-%j",
    save_s=args.save_s,
    partition=array_line + partition,
  )
  return header + BODY.format(
    preempted=exit_status.PREEMPTED,
    repo=shlex.quote(args.repo),
    python=shlex.quote(args.python),
    select=select,
    command=" ".join(a if a.endswith('"$run"') else shlex.quote(a) for a in command),
  )


def parser() -> argparse.ArgumentParser:
  p = cli.parser(__doc__)
  p.add_argument("--job_name", default="lm")
  p.add_argument("--nodes", type=int, default=1)
  p.add_argument("--gpus_per_node", type=int, default=8)
  p.add_argument("--cpus_per_task", type=int, default=8)
  p.add_argument("--time", default="24:00:00")
  p.add_argument(
    "--save_s",
    type=int,
    default=300,
    help="seconds before the time limit at which the tasks save and the job is "
    "requeued (Slurm may signal up to 60 s earlier)",
  )
  p.add_argument("--partition", default="")
  p.add_argument("--log_dir", default="slurm_logs")
  p.add_argument("--repo", default=REPO, help="the project's directory on the cluster")
  p.add_argument("--python", default=".venv/bin/python")
  p.add_argument("--script", default="train.sbatch", help="where the script is written")
  p.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true")
  return cli.with_train_flags(p)


def main(argv: list[str] | None = None) -> int:
  own, train_args = split_train_args(argv)
  args = parser().parse_args(own)
  args.train_args = train_args
  script = render(args)
  if args.dry_run:
    print(script, end="")
    return 0
  with open(args.script, "w") as f:
    f.write(script)
  os.makedirs(args.log_dir, exist_ok=True)
  return subprocess.run(["sbatch", args.script], check=False).returncode


if __name__ == "__main__":
  sys.exit(main())
