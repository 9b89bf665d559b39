"""Cooldown sweeps: a branch of the stable run is the WSD run of its length; the sweep's plan,
rows, FLOPs and resumption."""

import json
import os

import jax
import pytest
from test_sweep import _fake_runner, _sweep_config

from lm.runtime import sharding
from lm.scaling import cooldown, grid, results, sweep
from lm.training import checkpoint, config_checks, loop


def _cooldown_config(c):
  c = _sweep_config(c)
  c.scaling.method = "cooldown"
  return c


def test_a_branch_of_the_stable_run_is_the_wsd_run_of_its_length(tiny_config, tmp_path):
  c = tiny_config
  c.model.dropout = 0.0
  c.train.eval_every = 100
  c.train.checkpoint_every = 2
  c.train.keep_checkpoints = 1
  mesh = sharding.make_mesh(c.mesh, jax.devices()[:1])
  wsd = c.copy_and_resolve_references()
  wsd.optim.schedule, wsd.optim.wsd_decay_fraction, wsd.train.steps = "wsd_sqrt", 0.25, 12
  straight = loop.train_and_evaluate(wsd, str(tmp_path / "wsd"), mesh)

  stable = c.copy_and_resolve_references()  # decays at 12 - 3 = 9
  stable.optim.schedule, stable.train.steps, stable.train.keep_steps = "constant", 9, (5, 9)
  loop.train_and_evaluate(stable, str(tmp_path / "stable"), mesh)
  checkpoints = checkpoint.manager(str(tmp_path / "stable"), every=1, keep=1, use_async=False)
  assert checkpoints.all_steps() == [5, 9]  # the newest, and the branch points kept beside it

  cooldown.start_branch(str(tmp_path / "stable"), str(tmp_path / "branch"), 9)
  wsd.train.stop_after_steps = 1  # an interrupted branch resumes from its own checkpoint
  assert loop.train_and_evaluate(wsd, str(tmp_path / "branch"), mesh)["step"] == 10
  other = wsd.copy_and_resolve_references()
  other.optim.schedule = "wsd"  # and, as any run, refuses to go on with other settings
  with pytest.raises(config_checks.ConfigError, match=r"config\.optim\.schedule='wsd'"):
    loop.train_and_evaluate(other, str(tmp_path / "branch"), mesh)
  wsd.train.stop_after_steps = -1
  branch = loop.train_and_evaluate(wsd, str(tmp_path / "branch"), mesh)
  assert branch["start_step"] == 10 and branch["step"] == 12
  assert branch["eval_loss"] == pytest.approx(straight["eval_loss"], rel=1e-6, abs=0)
  assert branch["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-6, abs=0)
  for a, b in zip(
    jax.tree.leaves(sharding.host_copy(branch["state"].params)),
    jax.tree.leaves(sharding.host_copy(straight["state"].params)),
  ):
    assert abs(a - b).max() <= 1e-6
  with open(tmp_path / "branch" / "metrics.jsonl") as f:  # one curve: the stable run's, then its
    assert sorted({json.loads(line)["step"] for line in f}) == list(range(1, 13))


def test_cooldown_plan_has_a_stable_run_per_size_and_a_branch_per_point(tiny_config):
  config = _cooldown_config(tiny_config)
  points = grid.plan_runs(config, 64)
  runs = cooldown.plan_runs(config, points)
  branches = [r for r in runs if r.role == "branch"]
  assert len(branches) == len(points)
  by_name = {b.name: b for b in branches}
  for point in points:
    b = by_name[f"{point.name}_cooldown"]
    assert (b.steps, b.tokens, b.flops) == (point.steps, point.tokens, point.flops)
    assert b.branch_step == b.steps - max(round(0.2 * b.steps), 1) and b.schedule == "wsd"
    stable = next(r for r in runs if r.name == b.branch_of)
    assert b.branch_step in stable.keep_steps and stable.schedule == "constant"
    assert b.warmup_steps == stable.warmup_steps
  stables = [r for r in runs if r.role == "stable"]
  assert len(stables) == len({(p.num_layers, p.d_model) for p in points})
  for s in stables:
    assert s.steps == max(s.keep_steps)  # trains to its last branch point, no further
  # FLOPs: every size once to its last branch point, plus each branch's cooldown.
  spent = sum(s.flops for s in stables) + sum(
    b.flops / b.steps * (b.steps - b.branch_step) for b in branches
  )
  saved = cooldown.flops_saved(points, runs)
  assert saved["this_sweep"] == pytest.approx(spent)
  assert saved["independent"] == pytest.approx(sum(p.flops for p in points))
  assert saved["ratio"] == pytest.approx(spent / saved["independent"]) and saved["ratio"] < 1
  config.scaling.method = "independent"
  assert cooldown.plan_runs(config, points) == points
  assert cooldown.flops_saved(points, points)["ratio"] == 1.0
  config.scaling.method, config.scaling.batch_power = "cooldown", 0.5
  with pytest.raises(ValueError, match=r"batch_power=0\.5 must be 0"):
    cooldown.plan_runs(config, points)


def _fake_branching_runner(trained):
  """`_fake_runner`, which also leaves a stable run's branch-point checkpoints, and checks that
  a branch starts from its copy of one."""

  def runner(config, run_dir):
    trained.append(os.path.basename(run_dir))
    for step in config.train.keep_steps:
      os.makedirs(os.path.join(run_dir, "checkpoints", str(step)), exist_ok=True)
    if config.optim.schedule == "wsd":
      assert len(os.listdir(os.path.join(run_dir, "checkpoints"))) == 1
    return _fake_runner(config, run_dir)

  return runner


def test_cooldown_sweep_rows_resume_and_skip(tiny_config, tmp_path):
  config = _cooldown_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  points, runs, _ = sweep.sweep_runs(config, sweep.vocab_size(config), workdir)
  trained = []
  first = sweep.run_sweep(config, workdir, _fake_branching_runner(trained))
  assert trained == [r.name for r in runs]  # each stable run before its branches
  assert sorted(r["name"] for r in first) == sorted(f"{p.name}_cooldown" for p in points)
  by_name = {r["name"]: r for r in first}
  for p in points:
    row = by_name[f"{p.name}_cooldown"]
    assert (row["tokens"], row["steps"], row["budget"], row["method"]) == (
      p.tokens,
      p.steps,
      p.budget,
      "cooldown",
    )
    assert row["flops_6N"] == pytest.approx(p.flops, rel=1e-9)  # the point's C, whole
    assert row["branch_of"] == cooldown.stable_name(p) and row["learning_rate"] == p.learning_rate
  with open(os.path.join(workdir, grid.PLAN_FILE)) as f:
    saved = json.load(f)
  assert saved["method"] == "cooldown" and len(saved["stable_runs"]) == 4
  assert saved["training_flops"]["ratio"] == pytest.approx(
    cooldown.flops_saved(points, runs)["ratio"]
  )

  # A branch lost from the table (an interrupted sweep) trains again with its stable run only.
  lost = first[-1]
  with open(os.path.join(workdir, results.RESULTS_JSONL), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in first[:-1])
  trained.clear()
  assert len(sweep.run_sweep(config, workdir, _fake_branching_runner(trained))) == len(first)
  assert trained == [lost["branch_of"], lost["name"]]
  trained.clear()
  assert len(sweep.run_sweep(config, workdir, _fake_branching_runner(trained))) == len(first)
  assert trained == []  # everything finished: nothing trains
