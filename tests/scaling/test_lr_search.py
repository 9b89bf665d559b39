"""A learning rate per size (scaling.lr_grid): trials, the choice, the edge warning, the rows."""

import json
import math
import os

import pytest
from test_cooldown import _fake_branching_runner
from test_sweep import _fake_runner, _sweep_config

from lm.scaling import grid, lr_search, results, sweep, workers


def _runner(best: float, trained: list[str], branching: bool):
  """A fake runner whose eval loss is least at `best` times the base learning rate (1e-3)."""
  inner = _fake_branching_runner(trained) if branching else _fake_runner

  def runner(config, run_dir):
    if not branching:
      trained.append(os.path.basename(run_dir))
    summary = inner(config, run_dir)
    return {**summary, "eval_loss": 3 + math.log(config.optim.learning_rate / 1e-3 / best) ** 2}

  return runner


@pytest.mark.parametrize("method", ["independent", "cooldown"])
def test_each_size_trains_at_the_best_learning_rate_of_its_trials(
  tiny_config, tmp_path, caplog, method
):
  config = _sweep_config(tiny_config)
  config.scaling.method = method
  config.scaling.lr_grid = (0.5, 1.0, 2.0, 4.0)
  workdir = str(tmp_path / "sweep")
  points = grid.plan_runs(config, sweep.vocab_size(config))
  sizes = {lr_search.size_of(p) for p in points}
  trained: list[str] = []
  caplog.set_level("INFO", logger="lm.scaling.sweep")
  rows = sweep.run_sweep(config, workdir, _runner(2.0, trained, method == "cooldown"))
  trials = results.read_results(workdir, lr_search.TRIALS_JSONL)
  assert len(trials) == 4 * len(sizes)  # a trial per size and learning rate, beside the table
  assert sorted(r["learning_rate"] for r in trials) == sorted([5e-4, 1e-3, 2e-3, 4e-3] * len(sizes))
  assert len(rows) == len(points) and all(r["learning_rate"] == 2e-3 for r in rows)
  assert all(r["method"] == method for r in rows)
  with open(os.path.join(workdir, lr_search.CHOICE_FILE)) as f:
    choices = json.load(f)
  assert set(choices) == sizes
  assert all(c["best_multiplier"] == 2.0 and not c["at_edge"] for c in choices.values())
  assert not [r for r in caplog.records if "edge" in r.getMessage()]
  if method == "cooldown":  # a size's stable run goes on from its best trial's
    for r in rows:
      trial = f"stable_L1_d{r['d_model']}_lr2"
      if sum(p.d_model == r["d_model"] for p in points) == 1:
        assert r["branch_of"] == trial  # one horizon: nothing to go on to
      else:
        assert r["branch_of"] == f"stable_L1_d{r['d_model']}"
        assert trained.index(trial) < trained.index(r["branch_of"])
  trained.clear()
  assert len(sweep.run_sweep(config, workdir, _runner(2.0, trained, False))) == len(points)
  assert trained == []  # trials and points finished: nothing trains again


def test_a_best_learning_rate_at_the_edge_is_warned_and_recorded(tiny_config, tmp_path, caplog):
  config = _sweep_config(tiny_config)
  config.scaling.budgets = (4e7,)
  config.scaling.lr_grid = (0.5, 1.0)
  workdir = str(tmp_path / "sweep")
  caplog.set_level("INFO", logger="lm.scaling.sweep")
  rows = sweep.run_sweep(config, workdir, _runner(0.25, [], False))
  assert {r["learning_rate"] for r in rows} == {5e-4}
  with open(os.path.join(workdir, lr_search.CHOICE_FILE)) as f:
    choices = json.load(f)
  assert choices and all(c["at_edge"] and c["best_multiplier"] == 0.5 for c in choices.values())
  warnings = [
    r.getMessage() for r in caplog.records if r.name == sweep.log.name and r.levelname == "WARNING"
  ]
  assert len(warnings) == len(choices) and "at the edge of config.scaling.lr_grid" in warnings[0]
  for again in (  # the finished sweep again: its plan and warnings once, not once per round
    lambda: sweep.run_sweep(config, workdir, _runner(0.25, [], False)),
    lambda: workers.run_sweep_in_workers(config, ["false"], workdir, 2),  # nothing to start
  ):
    caplog.clear()
    again()
    lines = [r.getMessage() for r in caplog.records if r.name == sweep.log.name]
    assert sum(line.startswith("plan: ") for line in lines) == 1
    assert sum("at the edge of config.scaling.lr_grid" in line for line in lines) == len(choices)


@pytest.mark.parametrize("method", ["independent", "cooldown"])
def test_runs_longer_than_their_trials_train_at_a_rate_lowered_for_the_horizon(tiny_config, method):
  config = _sweep_config(tiny_config)
  config.scaling.method = method
  config.scaling.lr_grid = (1.0, 2.0)
  config.scaling.lr_horizon_power = 0.5
  points = grid.plan_runs(config, sweep.vocab_size(config))
  sizes = lr_search.by_size(points)
  size, same_size = max(sizes.items(), key=lambda kv: len(kv[1]))  # one with several horizons
  assert len(same_size) > 1
  choices = {size: {"best_multiplier": 2.0}}
  runs = lr_search.main_runs(config, points, choices)
  shortest, longest = same_size[0].steps, same_size[-1].steps
  for r in runs:
    horizon = longest if method == "cooldown" else r.steps
    want = same_size[0].learning_rate * 2.0 * (horizon / shortest) ** -0.5  # one rule rate a size
    assert r.learning_rate == pytest.approx(want), r.name
  if method == "cooldown":  # a lowered stable run starts afresh: the trial ran at another rate
    assert runs[0].role == "stable" and runs[0].branch_of == ""
  config.scaling.lr_horizon_power = 0.0
  assert all(
    r.learning_rate == pytest.approx(same_size[0].learning_rate * 2.0)
    for r in lr_search.main_runs(config, points, choices)
  )
