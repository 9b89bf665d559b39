"""A stop asked at any moment of a training process's life ends it as preempted (exit 75,
status.json `preempted`), also before its loop has started."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import REPO, config_flags
from lm.training import exit_status


def _catches(pid: int, signum: int) -> bool:
  """Whether process `pid` has a handler for `signum` (Linux: /proc/<pid>/status SigCgt)."""
  with open(f"/proc/{pid}/status") as f:
    caught = next(line for line in f if line.startswith("SigCgt:")).split()[1]
  return bool(int(caught, 16) >> (signum - 1) & 1)


def test_a_sigterm_during_start_up_stops_the_run_as_preempted(tiny_config, tmp_path):
  tiny_config.train.steps = 100_000
  env = dict(os.environ, PYTHONPATH=REPO)
  env.pop("XLA_FLAGS")
  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "experiments.train",
      "--config=experiments/configs/base.py",
      f"--workdir={tmp_path}",
      *config_flags(tiny_config),
    ],
    cwd=REPO,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  try:
    deadline = time.monotonic() + 120
    while not _catches(proc.pid, signal.SIGTERM):  # the first lines of the entry point ran
      assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
      time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # while it imports JAX, long before its first step
    _, err = proc.communicate(timeout=240)
  finally:
    proc.kill()
  assert proc.returncode == exit_status.PREEMPTED, err[-3000:]
  assert err.strip().splitlines()[-1] == (
    "preempted at step 0 (SIGTERM): resume with the same command"
  ), err[-3000:]
  status = json.loads((tmp_path / "status.json").read_text())
  assert (status["status"], status["step"], status["detail"]) == ("preempted", 0, "SIGTERM")
