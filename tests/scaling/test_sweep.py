"""A miniature IsoFLOP sweep (2 budgets x 3 tiny sizes) end to end: sweep -> fit -> plot."""

import json
import os
import subprocess
import sys

import jax
import pytest

from conftest import REPO, config_flags
from lm import config_checks, run, sharding, train
from lm.scaling import grid, laws, plots, sweep



def _sweep_config(c):
  s = c.scaling
  s.budgets = (4e7, 1.2e8)
  s.sizes_per_budget = 3
  s.size_ratio = 8.0
  s.tokens_per_param = 1.0
  s.rule = "fixed_depth"
  s.fixed_num_layers = 1
  s.head_dim = 8
  s.max_num_layers = 8
  s.min_steps = 5
  c.model.dropout = 0.0
  c.train.checkpoint_every = 1000  # the last step is always saved
  c.train.eval_batches = 1
  return c


def test_plan_gives_three_sizes_per_budget(tiny_config):
  plans = grid.plan_runs(_sweep_config(tiny_config), 64)
  assert [p.budget for p in plans] == [4e7] * 3 + [1.2e8] * 3
  for p in plans:
    assert p.steps >= 5 and p.tokens == p.steps * 8 * 16
    assert abs(p.flops / p.budget - 1) < 0.1  # rounding steps moves C a little


def test_a_mup_grid_trains_every_size_from_one_base_width_and_learning_rate(tiny_config):
  c = _sweep_config(tiny_config)
  c.scaling.mup_base_width = 16
  plans = grid.plan_runs(c, 64)
  assert len({p.d_model for p in plans}) > 1
  for p in plans:
    run = grid.run_config(c, p)
    assert (run.model.parametrization, run.model.base_width, run.model.base_head_dim) == (
        "mup", 16, c.scaling.head_dim)
    assert run.optim.learning_rate == c.optim.learning_rate
    config_checks.check(run, num_devices=1)
  c_std = c.copy_and_resolve_references()  # the same grid without μP: other run identities
  c_std.scaling.mup_base_width = 0
  p_std = grid.plan_runs(c_std, 64)[0]
  assert sweep.config_hash(grid.run_config(c_std, p_std)) != sweep.config_hash(
      grid.run_config(c, plans[0]))
  c.scaling.lr_power = 0.1
  with pytest.raises(ValueError, match=r"config.scaling.lr_power=0.1 must be 0 with "):
    grid.plan_runs(c, 64)


def test_run_identity_ignores_the_execution_and_bookkeeping_only(tiny_config):
  base = sweep.config_hash(tiny_config)
  ignored = [("execution", name) for name in tiny_config.execution] + [
      tuple(n.split(".")) for n in run.NOT_IDENTITY if "." in n]
  for section, name in ignored:
    changed = tiny_config.copy_and_resolve_references()
    value = changed[section][name]
    changed[section][name] = (not value if isinstance(value, bool) else value + 1
                              if isinstance(value, int) else "bfloat16")
    assert sweep.config_hash(changed) == base, (section, name)
  for section, name, value in [("model", "d_model", 64), ("train", "eval_batches", 3),
                               ("data", "encoding", "latin-1"), ("optim", "eps", 1e-6)]:
    changed = tiny_config.copy_and_resolve_references()
    changed[section][name] = value
    assert sweep.config_hash(changed) != base, (section, name)


@pytest.mark.slow
def test_sweep_fit_plot_end_to_end(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  rows = sweep.run_sweep(config, workdir, lambda c, d: train.train_and_evaluate(c, d, mesh))
  assert len(rows) == 6
  assert all(r["eval_loss"] > 0 and r["tokens_per_s"] > 0 for r in rows)
  assert all(os.path.exists(os.path.join(workdir, r["workdir"], "metrics.jsonl")) for r in rows)

  def must_not_train(cfg, run_dir):
    raise AssertionError(f"finished run trained again: {run_dir}")

  assert len(sweep.run_sweep(config, workdir, runner=must_not_train)) == 6  # all skipped
  config.scaling.min_steps = 4  # a planning field that leaves every run as it was
  config.execution.scan_layers = True  # how the runs execute: the same runs
  assert len(sweep.run_sweep(config, workdir, runner=must_not_train)) == 6

  final = laws.table_points(rows, "params_non_embedding", "eval_loss", "tokens",
                                   "flops_6N", "budget")
  curves = laws.curve_points(rows, workdir, final)
  report = laws.fit_all(final, curves, num_boot=10)
  assert {"approach1", "approach2", "approach3"} <= set(report)
  assert "a" in report["approach1"] and "alpha" in report["approach3"]
  paths = plots.all_plots(final, curves, report, str(tmp_path / "plots"))
  assert {"frontier.png", "residuals.png"} <= {os.path.basename(p) for p in paths}

  # The command-line fit on the sweep's CSV writes the same report and the plots.
  env = {**os.environ, "PYTHONPATH": REPO}
  out = subprocess.run(
      [sys.executable, "-m", "experiments.fit_scaling", f"--results={workdir}/results.csv",
       "--bootstrap=5", f"--plots_dir={tmp_path}/cli_plots"],
      cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
  assert "approach3" in out and "alpha" in out
  with open(os.path.join(workdir, "fit.json")) as f:
    assert json.load(f)["num_runs"] == 6
  assert os.path.exists(tmp_path / "cli_plots" / "frontier.png")


def test_emit_commands(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  entry = ["python", "-m", "experiments.train", "--config=cfg.py", "--config.seed=1"]
  lines = sweep.commands(config, entry, str(tmp_path / "w"))
  assert len(lines) == 6
  assert lines[0].startswith("python -m experiments.train --config=cfg.py --config.seed=1 "
                             f"--workdir={tmp_path / 'w'}/")
  assert "--config.seed=1" in lines[0] and "--config.train.steps=" in lines[0]


@pytest.mark.slow
def test_workers_match_in_process(tiny_config, tmp_path, monkeypatch):
  """Two worker processes (one core each) train the runs the in-process sweep trains."""
  monkeypatch.setenv("XLA_FLAGS", "")  # the workers see one CPU device, as a user's would
  monkeypatch.chdir(REPO)
  config = _sweep_config(tiny_config)
  config.scaling.budgets = (4e7,)
  config.scaling.sizes_per_budget = 2
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  serial = sweep.run_sweep(config, str(tmp_path / "serial"),
                           lambda c, d: train.train_and_evaluate(c, d, mesh))
  workdir = str(tmp_path / "workers")
  entry = [sys.executable, "-m", "experiments.train", "--config=experiments/configs/base.py"]
  rows = sweep.run_sweep_in_workers(config, entry + config_flags(config, skip=("scaling.",)),
                                    workdir, workers=2)
  assert sorted(r["name"] for r in rows) == sorted(r["name"] for r in serial)
  by_name = {r["name"]: r for r in rows}  # rows are appended as the workers finish
  for want in serial:
    got = by_name[want["name"]]
    assert got["config_hash"] == want["config_hash"] and got["tokens"] == want["tokens"]
    assert abs(got["eval_loss"] / want["eval_loss"] - 1) < 1e-4
    assert abs(got["train_loss"] / want["train_loss"] - 1) < 1e-4
    assert got["wall_s"] > 0
    assert os.path.exists(os.path.join(workdir, got["name"], "train.log"))
  # Finished runs are skipped; a failing run is named with its log.
  assert len(sweep.run_sweep_in_workers(config, entry, workdir, workers=2)) == 2
  config.scaling.budgets = (1.2e8,)
  with pytest.raises(RuntimeError, match=r"runs failed: C1\.2e08"):
    sweep.run_sweep_in_workers(config, entry + ["--config.model.activation=nope"], workdir,
                               workers=2)


def test_worker_env_splits_cores():
  cpus = sorted(os.sched_getaffinity(0))
  env, mine = sweep.worker_env(0, len(cpus), "cores")
  assert mine == {cpus[0]} and "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
  assert sweep.worker_env(1, 2, "gpus")[0]["CUDA_VISIBLE_DEVICES"] == "1"
  with pytest.raises(ValueError, match="at most one worker per CPU"):
    sweep.worker_env(0, len(cpus) + 1, "cores")
