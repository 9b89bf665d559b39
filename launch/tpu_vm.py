"""Cloud TPU VMs through gcloud: create, install this project on every worker, train, logs,
stop, delete. `--dry-run` prints the exact commands instead of running them.

    python -m launch.tpu_vm --name=lm-v5e --zone=us-west4-a --accelerator_type=v5e-16 create
    python -m launch.tpu_vm --name=lm-v5e --zone=us-west4-a install
    python -m launch.tpu_vm --name=lm-v5e --zone=us-west4-a train -- \\
        --config=experiments/configs/gpt2_124m.py --workdir=gs://bucket/runs/gpt2
    python -m launch.tpu_vm --name=lm-v5e --zone=us-west4-a logs --follow
    python -m launch.tpu_vm --name=lm-v5e --zone=us-west4-a stop
    python -m launch.tpu_vm --name=lm-v5e --zone=us-west4-a delete

`train` starts `python -m experiments.train` on all workers at once (`--worker=all`) with
`LM_DISTRIBUTED=auto`, so JAX finds the other hosts of the pod slice itself. It runs detached
(its own session, `setsid nohup`) and returns: closing the terminal or losing the connection
does not end the run. Each worker appends its output to ~/lm/train.log, ending with the exit
status (75: preempted, checkpoint saved); `logs --follow` reattaches to one worker's log.
`train` refuses to start where a run is still going. `stop` sends it SIGTERM on every worker:
the processes save at one agreed step and exit 75; `train` again resumes.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys

from launch import cli
from launch.cli import split_train_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = "requirements.lock"  # the pinned versions `install` puts on the workers
REMOTE_DIR = "~/lm"
REMOTE_LOG = "~/lm/train.log"
REMOTE_PID = "~/lm/train.pid"  # the training process of the last `train` on each worker

# Default TPU VM software version per generation (the accelerator type's prefix).
RUNTIMES = {
  "v4": "tpu-ubuntu2204-base",
  "v5litepod": "v2-alpha-tpuv5-lite",
  "v5p": "v2-alpha-tpuv5",
  "v6e": "v2-alpha-tpuv6e",
}


def accelerator_type(name: str) -> str:
  """gcloud's accelerator type: `v5e-16` is spelled `v5litepod-16`; others pass through."""
  return re.sub(r"^v5e-", "v5litepod-", name)


def _tpu(args, *rest: str) -> list[str]:
  cmd = ["gcloud", "compute", "tpus", *rest, f"--zone={args.zone}"]
  return cmd + ([f"--project={args.project}"] if args.project else [])


def _ssh(args, command: str, worker: str = "all") -> list[str]:
  return _tpu(args, "tpu-vm", "ssh", args.name, f"--worker={worker}", f"--command={command}")


def commands(args) -> list[list[str]]:
  """The gcloud command lines for `args.action`."""
  if args.action == "create":
    acc = accelerator_type(args.accelerator_type)
    runtime = args.runtime_version or RUNTIMES[acc.split("-")[0]]
    spot = ["--spot"] if args.spot else []
    if args.queued:
      return [
        _tpu(
          args,
          "queued-resources",
          "create",
          args.name,
          f"--node-id={args.name}",
          f"--accelerator-type={acc}",
          f"--runtime-version={runtime}",
          *spot,
        )
      ]
    return [
      _tpu(
        args,
        "tpu-vm",
        "create",
        args.name,
        f"--accelerator-type={acc}",
        f"--version={runtime}",
        *spot,
      )
    ]
  if args.action == "install":
    return [
      _ssh(args, f"mkdir -p {REMOTE_DIR}"),
      _tpu(
        args, "tpu-vm", "scp", "--recurse", *_sources(), f"{args.name}:{REMOTE_DIR}", "--worker=all"
      ),
      _ssh(args, install_command()),
    ]
  if args.action == "train":
    return [_ssh(args, detached_train(args.train_args))]
  if args.action == "logs":
    return [
      _ssh(
        args, f"tail -n {args.lines} {'-F ' if args.follow else ''}{REMOTE_LOG}", worker=args.worker
      )
    ]
  if args.action == "stop":
    return [
      _ssh(
        args,
        f'if {_RUNNING}; then kill -TERM "$(cat {REMOTE_PID})" && echo "$(hostname):'
        f' SIGTERM sent, the run saves and exits"; else echo "$(hostname): not '
        f'training"; fi',
      )
    ]
  if args.action == "delete":
    if args.queued:
      return [_tpu(args, "queued-resources", "delete", args.name, "--force", "--quiet")]
    return [_tpu(args, "tpu-vm", "delete", args.name, "--quiet")]
  raise ValueError(f"unknown action {args.action!r}")


_RUNNING = f'[ -f {REMOTE_PID} ] && kill -0 "$(cat {REMOTE_PID})" 2>/dev/null'


def detached_train(train_args: list[str]) -> str:
  """The shell command that starts training on a worker in its own session and returns: the
  process survives the ssh connection; its pid goes to REMOTE_PID, its output and then its exit
  status are appended to REMOTE_LOG."""
  train = shlex.join(["python3", "-m", "experiments.train", *train_args])
  job = (
    f'echo "[launch] $(date -u +%FT%TZ)" {shlex.quote(train)}; LM_DISTRIBUTED=auto {train} '
    f"& echo $! > {REMOTE_PID}; wait $!; status=$?; "
    f'echo "[launch] $(date -u +%FT%TZ) exit status $status"'
  )
  return (
    f'cd {REMOTE_DIR} && if {_RUNNING}; then echo "$(hostname): already training (pid '
    f'$(cat {REMOTE_PID})); stop it first" >&2; exit 1; fi; '
    f"setsid nohup bash -c {shlex.quote(job)} >> {REMOTE_LOG} 2>&1 < /dev/null & "
    f'echo "$(hostname): training in the background; log: {REMOTE_LOG}"'
  )


def locked_version(package: str) -> str:
  """`package`'s version pinned in requirements.lock."""
  with open(os.path.join(REPO, LOCK)) as f:
    for line in f:
      name, _, version = line.strip().partition("==")
      if name.lower() == package:
        return version
  raise ValueError(f"{LOCK} pins no {package}")


def install_command() -> str:
  """What `install` runs on each worker, as the Makefile installs: the pinned lock, then JAX's
  TPU runtime at the lock's JAX version and the gs:// packages (what the lock pins held to its
  versions), then this project without its dependencies."""
  pip = "python3 -m pip install -q"
  tpu = shlex.join([f"jax[tpu]=={locked_version('jax')}", "gcsfs", "google-cloud-storage"])
  return f"cd {REMOTE_DIR} && {pip} -r {LOCK} && {pip} -c {LOCK} {tpu} && {pip} --no-deps -e ."


def _sources() -> list[str]:
  """The project's files that the workers need (not .venv, runs or results)."""
  names = ("pyproject.toml", LOCK, "README.md", "lm", "experiments", "launch", "data")
  return [os.path.join(REPO, p) for p in names]


def parser() -> argparse.ArgumentParser:
  p = cli.parser(__doc__)
  p.add_argument("--name", required=True, help="TPU VM (and queued resource) name")
  p.add_argument("--zone", required=True)
  p.add_argument("--project", default="", help="default: gcloud's configured project")
  p.add_argument("--accelerator_type", default="v4-8", help="e.g. v4-8, v5e-16, v5p-32")
  p.add_argument("--runtime_version", default="", help="default: by TPU generation")
  p.add_argument("--queued", action="store_true", help="a queued resource instead of a VM")
  p.add_argument("--spot", action="store_true")
  p.add_argument("--worker", default="0", help="logs: which worker's log")
  p.add_argument("--lines", type=int, default=100)
  p.add_argument("--follow", action="store_true")
  p.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true")
  p.add_argument("action", choices=("create", "install", "train", "logs", "stop", "delete"))
  return cli.with_train_flags(p)


def main(argv: list[str] | None = None) -> int:
  own, train_args = split_train_args(argv)
  args = parser().parse_args(own)
  args.train_args = train_args
  for cmd in commands(args):
    print(shlex.join(cmd), flush=True)
    if not args.dry_run:
      returncode = subprocess.run(cmd, check=False).returncode
      if returncode:
        return returncode
  return 0


if __name__ == "__main__":
  sys.exit(main())
