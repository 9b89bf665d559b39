"""A miniature IsoFLOP sweep (2 budgets x 3 tiny sizes) end to end: sweep -> fit -> plot."""

import json
import os
import shutil
import subprocess
import sys

import jax
import pytest

from conftest import REPO
from lm.runtime import sharding
from lm.scaling import grid, laws, plots, results, sweep, tables
from lm.training import config_checks, loop

COMMITTED = os.path.join(REPO, "results", "scaling_cpu")


def _sweep_config(c):
  s = c.scaling
  s.budgets = (4e7, 1.2e8)
  s.sizes_per_budget = 3
  s.size_ratio = 8.0
  s.tokens_per_param = 1.0
  s.rule = "fixed_depth"
  s.fixed_num_layers = 1
  s.width_step = 8
  s.ladder_size = 8
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
      "mup",
      16,
      c.scaling.width_step,
    )
    assert run.optim.learning_rate == c.optim.learning_rate
    config_checks.check(run, num_devices=1)
  c_std = c.copy_and_resolve_references()  # the same grid without μP: other run identities
  c_std.scaling.mup_base_width = 0
  p_std = grid.plan_runs(c_std, 64)[0]
  assert results.config_hash(grid.run_config(c_std, p_std)) != results.config_hash(
    grid.run_config(c, plans[0])
  )
  c.scaling.lr_power = 0.1
  with pytest.raises(ValueError, match=r"config.scaling.lr_power=0.1 must be 0 with "):
    grid.plan_runs(c, 64)


def test_a_fixed_head_count_keeps_every_size_at_that_many_heads(tiny_config):
  c = _sweep_config(tiny_config)
  c.scaling.width_step = 4
  c.scaling.num_heads = 2
  plans = grid.plan_runs(c, 64)
  assert len({p.d_model for p in plans}) > 2
  for p in plans:
    assert p.d_model % 4 == 0 and p.num_heads == 2
    config_checks.check(grid.run_config(c, p), num_devices=1)
  c.scaling.num_heads = 3
  with pytest.raises(ValueError, match=r"num_heads=3 does not divide the width 4"):
    grid.plan_runs(c, 64)
  c.scaling.num_heads = 2
  c.scaling.mup_base_width = 16  # μP with 2 heads: the base's head size is 16 / 2
  for p in grid.plan_runs(c, 64):
    run = grid.run_config(c, p)
    assert (run.model.num_heads, run.model.base_head_dim) == (2, 8)
    config_checks.check(run, num_devices=1)
  c.scaling.mup_base_width = 18
  with pytest.raises(ValueError, match=r"mup_base_width=18 must be a width of the family"):
    grid.plan_runs(c, 64)


@pytest.mark.slow
def test_sweep_fit_plot_end_to_end(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  rows = sweep.run_sweep(config, workdir, lambda c, d: loop.train_and_evaluate(c, d, mesh))
  assert len(rows) == 6
  assert all(r["eval_loss"] > 0 and r["tokens_per_s"] > 0 for r in rows)
  assert all(os.path.exists(os.path.join(workdir, r["workdir"], "metrics.jsonl")) for r in rows)

  def must_not_train(cfg, run_dir):
    raise AssertionError(f"finished run trained again: {run_dir}")

  assert len(sweep.run_sweep(config, workdir, runner=must_not_train)) == 6  # all skipped
  config.scaling.min_steps = 4  # a planning field that leaves every run as it was
  config.execution.scan_layers = True  # how the runs execute: the same runs
  assert len(sweep.run_sweep(config, workdir, runner=must_not_train)) == 6

  final = tables.table_points(
    rows, "params_non_embedding", "eval_loss", "tokens", "flops_6N", "budget"
  )
  curves = tables.curve_points(rows, workdir, final)
  report = laws.fit_all(final, curves, num_boot=10)
  assert {"approach1", "approach2", "approach3"} <= set(report)
  assert "a" in report["approach1"] and "alpha" in report["approach3"]
  paths, _ = plots.all_plots(final, curves, report, str(tmp_path / "plots"))
  assert {"frontier.png", "residuals.png"} <= {os.path.basename(p) for p in paths}

  # The command-line fit on the sweep's CSV writes the same report and the plots.
  env = {**os.environ, "PYTHONPATH": REPO}
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.fit_scaling",
      f"--results={workdir}/results.csv",
      "--bootstrap=5",
      f"--plots_dir={tmp_path}/cli_plots",
    ],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  assert "approach3" in out and "alpha" in out
  with open(os.path.join(workdir, "fit.json")) as f:
    assert json.load(f)["num_runs"] == 6
  assert os.path.exists(tmp_path / "cli_plots" / "frontier.png")


def _fake_runner(config, run_dir):
  """Trains nothing: writes the metrics a finished run would and returns its summary."""
  os.makedirs(run_dir, exist_ok=True)
  steps = config.train.steps
  with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
    f.write(json.dumps({"step": steps, "loss": 3.0, "tokens_per_s": 1e4}) + "\n")
  return {
    "step": steps,
    "train_loss": 3.0,
    "eval_loss": 3.1,
    "wall_s": 0.5,
    "preempted": None,
    "tokens_per_step": config.data.batch_size * config.data.seq_len,
  }


def test_sweep_prints_plan_and_progress(tiny_config, tmp_path, caplog):
  config = _sweep_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  caplog.set_level("INFO", logger="lm.scaling.sweep")
  sweep.run_sweep(config, workdir, _fake_runner)
  lines = [r.getMessage() for r in caplog.records if r.name == sweep.log.name]
  assert lines[0].startswith("plan: 6 runs, 0 done, 6 to train on 1 worker(s); ")
  assert "training FLOPs (6N) to go" in lines[0]
  assert "(a guess: scaling.est_flops_per_s)" in lines[1]
  plans = grid.plan_runs(config, sweep.vocab_size(config))
  for k, plan in enumerate(plans, 1):  # one line per pending run: N, D, steps, FLOPs, time
    assert lines[1 + k].split()[:2] == [f"{k}.", plan.name]
    assert f"N {plan.params:,}" in lines[1 + k] and f"{plan.steps} steps" in lines[1 + k]
  started = [ln for ln in lines if ln.startswith("run ")]
  finished = [ln for ln in lines if ln.startswith("finished ")]
  assert [ln.split(":")[0] for ln in started] == [f"run {k} of 6" for k in range(1, 7)]
  assert [ln.split(":")[0] for ln in finished] == [f"finished {k} of 6" for k in range(1, 7)]
  assert "ETA" in finished[0] and finished[-1].endswith(", 0 to go, ETA 0s")
  with open(os.path.join(workdir, grid.PLAN_FILE)) as f:
    saved = json.load(f)
  assert saved["flops_convention"] == "6N" and len(saved["runs"]) == 6

  caplog.clear()  # again: nothing to train, the estimate measured on the table's rows
  sweep.run_sweep(config, workdir, _fake_runner)
  lines = [r.getMessage() for r in caplog.records if r.name == sweep.log.name]
  assert lines[0].startswith("plan: 6 runs, 6 done, 0 to train")
  assert "(measured on 6 finished runs)" in lines[1]


def _fit_cli(table: str, *flags: str) -> str:
  return subprocess.run(
    [sys.executable, "-m", "experiments.fit_scaling", f"--results={table}", *flags],
    cwd=REPO,
    env={**os.environ, "PYTHONPATH": REPO},
    capture_output=True,
    text=True,
    check=True,
  ).stdout


def test_fit_committed_results_without_flags(tmp_path):
  """The committed study fits with no flags as the sweep planned it (6N+attn, its curves/),
  to the committed fit.json's estimates, prediction and verification."""
  study = tmp_path / "scaling_cpu"
  shutil.copytree(COMMITTED, study, ignore=shutil.ignore_patterns("fit.json", "plots"))
  out = _fit_cli(
    f"{study}/results.csv", "--bootstrap=5", f"--plots_dir={study}/plots", "--predict_flops=1e13"
  )
  assert out.splitlines()[0] == (f"N: params_non_embedding, C: flops_6N+attn ({study}/sweep.json)")
  with open(study / "fit.json") as f:
    got = json.load(f)
  with open(os.path.join(COMMITTED, "fit.json")) as f:
    want = json.load(f)
  for approach in ("approach1", "approach2", "approach3"):
    assert got[approach]["a"] == pytest.approx(want[approach]["a"], rel=1e-6), approach
  assert got["approach2"]["skipped"] == want["approach2"]["skipped"] == []
  assert got["prediction"]["n_opt"] == pytest.approx(want["prediction"]["n_opt"], rel=1e-6)
  trained = want["verification"]["trained"]
  assert got["verification"]["trained"]["eval_loss"] == trained["eval_loss"]
  assert got["verification"]["loss_rel_error"] == pytest.approx(
    want["verification"]["loss_rel_error"], rel=1e-6
  )
  assert sorted(os.listdir(study / "plots")) == [
    "backtest.png",
    "cooldown_curves.png",
    "frontier.png",
    "isoflop.png",
    "lr_sweep.png",
    "optimal_vs_compute.png",
    "residuals.png",
  ]
  # Without the plan file, the defaults (6N) and a line that says so.
  os.remove(study / grid.PLAN_FILE)
  out = _fit_cli(f"{study}/results.csv", "--bootstrap=2", "--nocurves")
  assert out.splitlines()[0] == "N: params_non_embedding, C: flops_6N (default)"


def test_plot_labels_name_the_convention():
  labels = plots.Labels.of_columns("params_non_embedding", "flops_6N+attn")
  assert labels == plots.Labels("parameters N (non-embedding)", "training FLOPs C (6N+attn)")
  assert plots.Labels.of_columns("N", None).c == "training FLOPs C (6ND)"
  assert [plots._plain(x) for x in (1e11, 2e4, 100.0, 0.5)] == ["1e11", "2e4", "100", "0.5"]


def test_emit_commands(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  entry = ["python", "-m", "experiments.train", "--config=cfg.py", "--config.seed=1"]
  lines = sweep.commands(config, entry, str(tmp_path / "w"))
  assert len(lines) == 6
  assert lines[0].startswith(
    f"python -m experiments.train --config=cfg.py --config.seed=1 --workdir={tmp_path / 'w'}/"
  )
  assert "--config.seed=1" in lines[0] and "--config.train.steps=" in lines[0]
