"""Two processes x 4 CPU devices (through launch/local.py) train like one process: same losses,
checkpoints that a different layout restores, and a clear failure when a process dies."""

import os
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from conftest import REPO, config_flags
from lm.data import pipeline, token_cache
from lm.runs import metrics, run_files
from lm.runtime import sharding
from lm.training import exit_status, loop


def _launch(config, workdir, *extra) -> subprocess.Popen:
  cmd = [
    sys.executable,
    "-m",
    "launch.local",
    "--num_processes=2",
    "--devices_per_process=4",
    *extra,
    "--",
    "--config=experiments/configs/base.py",
    f"--workdir={workdir}",
    *config_flags(config),
  ]
  env = dict(os.environ, PYTHONPATH=REPO)
  env.pop("XLA_FLAGS")  # the launcher sets each child's device count
  return subprocess.Popen(
    cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )


def _launch_and_wait(config, workdir, status=0) -> str:
  proc = _launch(config, workdir)
  try:
    out, _ = proc.communicate(timeout=240)
  finally:
    proc.kill()
  assert proc.returncode == status, out[-3000:]
  return out


def _losses(workdir) -> dict[int, float]:
  rows = metrics.read_metrics(str(workdir))
  return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _in_process(config, workdir, num_devices):
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:num_devices])
  return loop.train_and_evaluate(config, str(workdir), mesh=mesh)


def _small(config):
  config.mesh.data = -1
  config.train.steps = 6
  config.train.eval_every = 100
  config.train.checkpoint_every = 3
  return config


def test_two_processes_match_one_and_eight_devices(tiny_config, tmp_path):
  _small(tiny_config)
  out = _launch_and_wait(tiny_config, tmp_path / "2x4")  # first: it builds the token cache
  assert "train_step compiled 1 time(s)" in out, out[-3000:]  # counted by XLA compilations
  _in_process(tiny_config, tmp_path / "1x1", 1)
  _in_process(tiny_config, tmp_path / "1x8", 8)
  ref = _losses(tmp_path / "1x1")
  assert sorted(ref) == list(range(1, 7))
  for layout in ("1x8", "2x4"):
    got = _losses(tmp_path / layout)
    assert sorted(got) == sorted(ref)
    np.testing.assert_allclose([got[s] for s in ref], list(ref.values()), rtol=1e-5)


def test_two_process_checkpoint_resumes_on_one_device(tiny_config, tmp_path):
  _small(tiny_config)
  straight = _in_process(tiny_config, tmp_path / "straight", 1)
  tiny_config.train.stop_after_steps = 3
  _launch_and_wait(tiny_config, tmp_path / "resumed", status=exit_status.PREEMPTED)
  assert sorted(_losses(tmp_path / "resumed")) == [1, 2, 3]
  tiny_config.train.stop_after_steps = -1
  resumed = _in_process(tiny_config, tmp_path / "resumed", 1)
  assert resumed["start_step"] == 3 and resumed["step"] == 6
  want, got = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
  np.testing.assert_allclose([got[s] for s in want], list(want.values()), rtol=1e-5)
  np.testing.assert_allclose(resumed["train_loss"], straight["train_loss"], rtol=1e-5)


@pytest.mark.slow  # a process killed, signalled or stopped: the heartbeat and grace waits
@pytest.mark.parametrize("victim", ["p1", "p0"])  # p0 hosts JAX's coordination service
def test_a_dead_process_fails_the_launch_instead_of_hanging(tiny_config, tmp_path, victim):
  _small(tiny_config)
  tiny_config.train.steps = 100_000
  tiny_config.train.checkpoint_every = 100_000
  proc = _launch(tiny_config, tmp_path, "--grace_s=20")
  lines = []
  reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
  reader.start()
  try:
    deadline = time.monotonic() + 180
    metrics = tmp_path / "metrics.jsonl"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
      assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
      time.sleep(0.2)
    pids = {
      line.split()[1]: int(line.split()[3])
      for line in lines
      if line.startswith("[launch] p") and " pid " in line
    }
    killed = time.monotonic()
    os.kill(pids[victim], signal.SIGKILL)
    proc.wait(timeout=60)
    detected_s = time.monotonic() - killed
  finally:
    proc.kill()
    reader.join(timeout=5)
  out = "".join(lines)
  print(
    f"launcher exited {detected_s:.1f}s after {victim} was killed;",
    *[line for line in lines if line.startswith("[launch]")],
  )
  assert proc.returncode != 0 and detected_s < 60
  assert f"[launch] failed: {victim}" in out, out[-3000:]
  survivor = pids["p0" if victim == "p1" else "p1"]
  assert not os.path.exists(f"/proc/{survivor}"), "the survivor is still running"


def _wait_for_progress(proc, lines, workdir, rows, deadline_s=240):
  deadline = time.monotonic() + deadline_s
  metrics = workdir / "metrics.jsonl"
  while not (metrics.exists() and len(metrics.read_text().splitlines()) >= rows):
    assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
    time.sleep(0.2)


def _worker_pids(lines) -> list[int]:
  return [
    int(line.split()[3]) for line in lines if line.startswith("[launch] p") and " pid " in line
  ]


@pytest.mark.slow  # a process killed, signalled or stopped: the heartbeat and grace waits
def test_signals_to_the_launcher_reach_its_processes(tiny_config, tmp_path):
  """SIGTERM: every process saves at one agreed step and the launch exits as preempted. SIGKILL
  of the launcher: its processes still save and exit, none is left running."""
  _small(tiny_config)
  tiny_config.train.steps = 100_000
  tiny_config.train.checkpoint_every = 100_000
  steps = []
  for signum in (signal.SIGTERM, signal.SIGKILL):
    proc = _launch(tiny_config, tmp_path)
    lines = []
    reader = threading.Thread(target=lines.extend, args=(proc.stdout,), daemon=True)
    reader.start()
    try:
      _wait_for_progress(proc, lines, tmp_path, rows=3 + (steps[-1] if steps else 0))
      pids = _worker_pids(lines)
      proc.send_signal(signum)
      proc.wait(timeout=120)
      deadline = time.monotonic() + 60
      while any(os.path.exists(f"/proc/{p}") for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    finally:
      proc.kill()
      reader.join(timeout=5)
    out = "".join(lines)
    assert not any(os.path.exists(f"/proc/{p}") for p in pids), "orphans: " + out[-3000:]
    saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir())
    assert len(saved) == len(steps) + 1, (saved, out[-3000:])
    steps.append(saved[-1])
    if signum == signal.SIGTERM:
      assert proc.returncode == exit_status.PREEMPTED, out[-3000:]
      assert out.count(f"preempted at step {steps[-1]} (SIGTERM)") == 2, out[-3000:]
  assert steps[1] > steps[0]  # the second launch resumed, trained on, and saved when orphaned


@pytest.mark.slow  # a process killed, signalled or stopped: the heartbeat and grace waits
def test_a_stopped_process_is_blamed_and_the_run_recorded_as_failed(tiny_config, tmp_path):
  """SIGSTOP: the hung peer sends no heartbeats, JAX's coordination service ends the other, and
  the launcher names the stopped one, in its output and in the run's status.json."""
  _small(tiny_config)
  tiny_config.train.steps = 100_000
  tiny_config.train.checkpoint_every = 100_000
  proc = _launch(tiny_config, tmp_path, "--grace_s=20")
  lines = []
  reader = threading.Thread(target=lines.extend, args=(proc.stdout,), daemon=True)
  reader.start()
  try:
    _wait_for_progress(proc, lines, tmp_path, rows=3)
    os.kill(_worker_pids(lines)[1], signal.SIGSTOP)
    proc.wait(timeout=120)
  finally:
    proc.kill()
    reader.join(timeout=5)
  out = "".join(lines)
  assert proc.returncode != 0, out[-3000:]
  assert "[launch] failed: p1 (stopped (SIGSTOP or a debugger))" in out, out[-3000:]
  status = run_files.read_status(str(tmp_path))
  assert status is not None and status["status"] == run_files.FAILED, status
  assert status["detail"] == "launch.local: p1 stopped (SIGSTOP or a debugger)", status
  assert not any(os.path.exists(f"/proc/{p}") for p in _worker_pids(lines)), out[-3000:]


@pytest.mark.parametrize("fills_batches", [True, False])
def test_two_processes_evaluate_the_whole_split_as_one(tiny_config, tmp_path, fills_batches):
  """The default evaluation, the whole validation split, across 2 processes x 4 devices (it
  hung at the first evaluation once), whether or not the split fills whole global batches."""
  _small(tiny_config)
  tiny_config.data.validation_fraction = 0.5  # dozens of batches: a split's worth in flight
  tiny_config.train.eval_batches = -1
  tiny_config.train.eval_every = 3
  tokens = token_cache.tokenized_data(tiny_config.data).splits["validation"]
  seq_len = next(
    n
    for n in range(16, 64)
    if (len(pipeline.TokenWindows(tokens, n)) % tiny_config.data.batch_size == 0) == fills_batches
  )
  tiny_config.data.seq_len = tiny_config.model.max_seq_len = seq_len
  _launch_and_wait(tiny_config, tmp_path / "2x4")
  one = _in_process(tiny_config, tmp_path / "1x1", 1)
  evals = [r for r in metrics.read_metrics(str(tmp_path / "2x4")) if "eval_loss" in r]
  assert [r["step"] for r in evals] == [3, 6]
  np.testing.assert_allclose(evals[-1]["eval_loss"], one["eval_loss"], rtol=1e-5)
