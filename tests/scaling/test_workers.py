"""The sweep's worker processes: a reusable worker, the runs they train against the in-process
sweep's, and how the CPUs or GPUs are shared out."""

import io
import json
import os
import sys

import jax
import pytest
from test_sweep import _fake_runner, _sweep_config

from conftest import REPO, config_flags
from lm.runtime import sharding
from lm.scaling import grid, sweep, workers
from lm.training import loop


def test_serve_trains_the_runs_it_is_sent(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  names = [p.name for p in grid.plan_runs(config, sweep.vocab_size(config))][:2]

  def runner(cfg, run_dir):
    if run_dir.endswith(names[1]):
      raise ValueError("boom")
    return _fake_runner(cfg, run_dir)

  replies = io.StringIO()
  status = workers.serve(
    config, str(tmp_path), io.StringIO("\n".join(names) + "\n"), replies, runner
  )
  assert status == 0
  got = [json.loads(line) for line in replies.getvalue().splitlines()]
  assert got == [
    {"name": names[0], "status": "finished", "detail": ""},
    {"name": names[1], "status": "failed", "detail": "ValueError: boom"},
  ]
  with open(tmp_path / names[1] / "train.log") as f:
    assert "boom" in f.read()  # each run's log lines go to its own train.log


@pytest.mark.slow
def test_workers_match_in_process(tiny_config, tmp_path, monkeypatch):
  """Two worker processes (one core each) train the runs the in-process sweep trains."""
  config = _sweep_config(tiny_config)
  config.scaling.budgets = (4e7,)
  config.scaling.sizes_per_budget = 2
  # This process's devices first: JAX reads XLA_FLAGS once, at its first use.
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  monkeypatch.setenv("XLA_FLAGS", "")  # the workers see one CPU device, as a user's would
  monkeypatch.chdir(REPO)
  serial = sweep.run_sweep(
    config, str(tmp_path / "serial"), lambda c, d: loop.train_and_evaluate(c, d, mesh)
  )
  workdir = str(tmp_path / "workers")
  entry = [sys.executable, "-m", "experiments.train", "--config=experiments/configs/base.py"]
  rows = workers.run_sweep_in_workers(
    config, entry + config_flags(config, skip=("scaling.",)), workdir, workers=2
  )
  assert sorted(r["name"] for r in rows) == sorted(r["name"] for r in serial)
  by_name = {r["name"]: r for r in rows}  # rows are appended as the workers finish
  for want in serial:
    got = by_name[want["name"]]
    assert got["config_hash"] == want["config_hash"] and got["tokens"] == want["tokens"]
    assert abs(got["eval_loss"] / want["eval_loss"] - 1) < 1e-4
    assert abs(got["train_loss"] / want["train_loss"] - 1) < 1e-4
    assert got["wall_s"] > 0
    assert os.path.exists(os.path.join(workdir, got["name"], "train.log"))
  # Reusable workers (one process trains several runs) give the same runs: same hashes, the
  # same eval losses as one process per run.
  reused_dir = str(tmp_path / "reused")
  worker = [
    sys.executable,
    "-m",
    "experiments.sweep",
    "--config=experiments/configs/base.py",
    *config_flags(config),
    f"--workdir={reused_dir}",
    "--serve",
  ]
  reused = workers.run_sweep_in_workers(
    config, entry, reused_dir, workers=1, worker_command=worker, cache_dir=str(tmp_path / "cache")
  )
  assert len(reused) == 2 and os.path.exists(os.path.join(reused_dir, "worker0.log"))
  for got in reused:
    want = by_name[got["name"]]
    assert got["config_hash"] == want["config_hash"] and got["steps"] == want["steps"]
    assert abs(got["eval_loss"] - want["eval_loss"]) < 1e-6
    assert abs(got["train_loss"] - want["train_loss"]) < 1e-6
    with open(os.path.join(reused_dir, got["name"], "train.log")) as f:
      assert "done: step" in f.read()
  # Finished runs are skipped; a failing run is named with its log.
  assert len(workers.run_sweep_in_workers(config, entry, workdir, workers=2)) == 2
  config.scaling.budgets = (1.2e8,)
  with pytest.raises(RuntimeError, match=r"runs failed: C1\.2e08"):
    workers.run_sweep_in_workers(
      config, entry + ["--config.model.activation=nope"], workdir, workers=2
    )


def test_worker_env_splits_cores():
  cpus = sorted(os.sched_getaffinity(0))
  env, mine = workers.worker_env(0, len(cpus), "cores")
  assert mine == {cpus[0]} and "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
  assert workers.worker_env(1, 2, "gpus")[0]["CUDA_VISIBLE_DEVICES"] == "1"
  with pytest.raises(ValueError, match="at most one worker per CPU"):
    workers.worker_env(0, len(cpus) + 1, "cores")
