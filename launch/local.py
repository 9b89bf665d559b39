"""Runs N training processes on this machine, each with M forced CPU devices.

    python -m launch.local --num_processes=2 --devices_per_process=4 -- \\
        --config=experiments/configs/shakespeare_char.py --workdir=runs/mp

Everything after `--` goes to `python -m experiments.train`. Output lines are prefixed `[pI]`.
If a process fails, the others get `--grace_s` seconds to exit, then are terminated; the exit
status is non-zero and names the failed process. SIGTERM or SIGINT to the launcher reaches every
process, which save a checkpoint at one agreed step and exit; the launcher then exits with
`lm.training.exit_status.PREEMPTED` (75). The processes die with the launcher even if it is killed
(SIGKILL): on Linux the kernel sends them SIGTERM when it goes.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

from launch import cli
from launch.cli import split_train_args
from lm.runs import run_files
from lm.training import exit_status

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def free_port() -> int:
  """A TCP port on localhost that was free a moment ago."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _die_with(parent_pid: int):
  """A `preexec_fn`: the child gets SIGTERM when the launcher dies (Linux), and if the launcher
  is already gone by then, at once."""

  def preexec() -> None:
    if sys.platform.startswith("linux"):
      ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
      os.kill(os.getpid(), signal.SIGTERM)

  return preexec


class _ForwardSignals:
  """While active, SIGTERM and SIGINT to the launcher are sent on to the processes as SIGTERM
  (they save and exit)."""

  def __init__(self, procs: list[subprocess.Popen]):
    self.procs, self.received, self.received_at = procs, None, None
    self._previous = {s: signal.signal(s, self._forward) for s in (signal.SIGTERM, signal.SIGINT)}

  def _forward(self, signum, frame):
    del frame
    self.received, self.received_at = signal.Signals(signum).name, time.monotonic()
    print(f"[launch] {self.received}: asking every process to save and exit", flush=True)
    for p in self.procs:
      if p.poll() is None:
        p.send_signal(signal.SIGTERM)

  def restore(self) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)


def _stream(proc: subprocess.Popen, prefix: str) -> None:
  assert proc.stdout is not None, "started with stdout=PIPE"
  for line in proc.stdout:
    sys.stdout.write(f"{prefix} {line}")
    sys.stdout.flush()


def _stop(procs: list[subprocess.Popen], wait_s: float) -> None:
  for p in procs:
    if p.poll() is None:
      p.terminate()
  deadline = time.monotonic() + wait_s
  for p in procs:
    try:
      p.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      p.kill()
      p.wait()


def _state(proc: subprocess.Popen) -> str:
  """How `proc` ended, or that it is stopped."""
  if proc.poll() is None:
    return "stopped (SIGSTOP or a debugger)" if _stopped(proc.pid) else "running"
  if proc.returncode < 0:
    return f"killed by {signal.Signals(-proc.returncode).name}"
  return f"exited with status {proc.returncode}"


def _start(train_args: list[str], num_processes: int, devices_per_process: int):
  """Starts the training processes, each printing to a pipe."""
  address = f"127.0.0.1:{free_port()}"
  env = dict(
    os.environ,
    JAX_PLATFORMS="cpu",
    XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}",
  )
  procs = []
  for i in range(num_processes):
    cmd = [
      sys.executable,
      "-m",
      "experiments.train",
      *train_args,
      f"--coordinator_address={address}",
      f"--num_processes={num_processes}",
      f"--process_id={i}",
    ]
    # Started before any thread of ours (a preexec_fn is unsafe in a threaded parent).
    procs.append(
      subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        preexec_fn=_die_with(os.getpid()),
      )
    )
    print(f"[launch] p{i} pid {procs[-1].pid}", flush=True)
  return procs


def _first_failure(
  procs: list[subprocess.Popen], signals: _ForwardSignals, grace_s: float
) -> int | None:
  """Waits until every process has exited (0 or preempted), one has failed (its index is
  returned), or `grace_s` has passed since a signal reached the launcher."""
  exits: queue.Queue[int] = queue.Queue()  # process indices in the order they exit
  for i, p in enumerate(procs):
    threading.Thread(target=lambda i=i, p=p: (p.wait(), exits.put(i)), daemon=True).start()
  running = set(range(len(procs)))
  while running:
    try:
      i = exits.get(timeout=0.5)
    except queue.Empty:
      if signals.received_at is not None and time.monotonic() - signals.received_at > grace_s:
        print(
          f"[launch] still running {grace_s:.0f}s after {signals.received}; stopping them",
          flush=True,
        )
        return None
      continue
    running.discard(i)
    if procs[i].returncode not in (0, exit_status.PREEMPTED):
      return i
  return None


def _stopped(pid: int) -> bool:
  """Whether process `pid` is stopped (SIGSTOP, a debugger): Linux's /proc state T or t."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      state = f.read().rsplit(")", 1)[1].split()[0]
  except (OSError, IndexError):
    return False
  return state in ("T", "t")


def _blame(procs: list[subprocess.Popen], failed: int) -> int:
  """The process to blame for `failed`'s failure: a peer that is stopped (its heartbeats
  stopped, so JAX's coordination service ended the others), else `failed` itself."""
  stopped = [i for i, p in enumerate(procs) if p.poll() is None and _stopped(p.pid)]
  if not stopped:
    return failed
  print(
    f"[launch] p{stopped[0]} is stopped and sends no heartbeats: p{failed} ended because of it",
    flush=True,
  )
  return stopped[0]


def _record_failure(train_args: list[str], detail: str) -> None:
  """Says in the run's status.json that the launch failed, where no process said how it
  ended (one killed by a signal writes nothing)."""
  workdir = next(
    (a.split("=", 1)[1] for a in train_args if a.startswith("--workdir=")),
    next((b for a, b in itertools.pairwise(train_args) if a == "--workdir"), None),
  )
  if workdir is None or not run_files.is_run(workdir):
    return
  status = run_files.read_status(workdir)
  if status is None or status["status"] == run_files.RUNNING:
    step = None if status is None else status["step"]
    run_files.write_status(workdir, run_files.FAILED, step, f"launch.local: {detail}")


def _outcome(procs: list[subprocess.Popen], failed: int | None, reason: str) -> int:
  """The launcher's exit status, said in a line: 0, preempted, or the failed process's
  (`reason`: how it failed)."""
  statuses = ", ".join(f"p{i}={p.returncode}" for i, p in enumerate(procs))
  print(f"[launch] exit statuses: {statuses}", flush=True)
  if failed is None and any(p.returncode == exit_status.PREEMPTED for p in procs):
    print(
      "[launch] preempted: the processes saved a checkpoint; run the same command to resume",
      flush=True,
    )
    return exit_status.PREEMPTED
  if failed is None:
    return 0
  print(f"[launch] failed: p{failed} ({reason})", flush=True)
  return procs[failed].returncode if procs[failed].returncode > 0 else 1


def launch(
  train_args: list[str], num_processes: int, devices_per_process: int, grace_s: float = 30.0
) -> int:
  """Starts the processes, streams their output and waits; returns 0 or the first failure's
  exit status (1 if that was a signal)."""
  procs = _start(train_args, num_processes, devices_per_process)
  threads = [
    threading.Thread(target=_stream, args=(p, f"[p{i}]"), daemon=True) for i, p in enumerate(procs)
  ]
  for t in threads:
    t.start()
  failed, reason = None, ""
  signals = _ForwardSignals(procs)
  try:
    failed = _first_failure(procs, signals, grace_s)
    if failed is not None:
      failed = _blame(procs, failed)
      reason = _state(procs[failed])
      print(f"[launch] p{failed} {reason}; stopping the others", flush=True)
      deadline = time.monotonic() + grace_s
      while time.monotonic() < deadline and any(
        p.poll() is None and not _stopped(p.pid) for p in procs
      ):
        time.sleep(0.2)
  finally:
    _stop(procs, wait_s=5.0)
    signals.restore()
    for t in threads:
      t.join(timeout=5.0)
  if failed is not None:
    _record_failure(train_args, f"p{failed} {reason}")
  return _outcome(procs, failed, reason)


def main(argv: list[str] | None = None) -> int:
  own, train_args = split_train_args(argv)
  parser = cli.parser(__doc__)
  parser.add_argument("--num_processes", type=int, default=2)
  parser.add_argument("--devices_per_process", type=int, default=1)
  parser.add_argument(
    "--grace_s", type=float, default=30.0, help="seconds the others get to exit after one fails"
  )
  args = cli.with_train_flags(parser).parse_args(own)
  return launch(train_args, args.num_processes, args.devices_per_process, args.grace_s)


if __name__ == "__main__":
  sys.exit(main())
