"""Renders a Slurm batch script that trains with one process per GPU, and submits it.

    python -m launch.slurm --nodes=2 --gpus_per_node=8 --partition=gpu --dry-run -- \
        --config=experiments/configs/gpt2_124m.py --workdir=/shared/runs/gpt2

`--dry-run` prints the script; otherwise it is written to `--script` and passed to `sbatch`.
Every task sees all of its node's GPUs and JAX's Slurm detection (`LM_DISTRIBUTED=auto`) gives
task `SLURM_LOCALID` its own one, the coordinator (the first node) and the process ids.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

from launch.cli import split_train_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TEMPLATE = """#!/bin/bash
#SBATCH --job-name={job_name}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node={gpus_per_node}
#SBATCH --gpus-per-node={gpus_per_node}
#SBATCH --cpus-per-task={cpus_per_task}
#SBATCH --time={time}
#SBATCH --output={log_dir}/%x-%j.out
{partition}
set -euo pipefail
cd {repo}
export LM_DISTRIBUTED=auto
srun --kill-on-bad-exit=1 {python} -m experiments.train {train_args}
"""


def render(args) -> str:
  """The batch script for `args`."""
  return TEMPLATE.format(
      job_name=args.job_name, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
      cpus_per_task=args.cpus_per_task, time=args.time, log_dir=args.log_dir,
      partition=f"#SBATCH --partition={args.partition}" if args.partition else "",
      repo=shlex.quote(args.repo), python=shlex.quote(args.python),
      train_args=shlex.join(args.train_args))


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--job_name", default="lm")
  p.add_argument("--nodes", type=int, default=1)
  p.add_argument("--gpus_per_node", type=int, default=8)
  p.add_argument("--cpus_per_task", type=int, default=8)
  p.add_argument("--time", default="24:00:00")
  p.add_argument("--partition", default="")
  p.add_argument("--log_dir", default="slurm_logs")
  p.add_argument("--repo", default=REPO, help="the project's directory on the cluster")
  p.add_argument("--python", default=".venv/bin/python")
  p.add_argument("--script", default="train.sbatch", help="where the script is written")
  p.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true")
  return p


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
