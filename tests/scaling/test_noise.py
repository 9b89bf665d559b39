"""Seed repeats (scaling.noise_sizes, scaling.noise_seeds): their plan, their rows beside the
table, and the pooled seed noise they measure."""

import json
import math
import os
import sys

import numpy as np
import pytest
from test_cooldown import _fake_branching_runner
from test_sweep import _sweep_config

from lm.scaling import cooldown, grid, lr_search, noise, results, sweep, workers


def _row(name: str, loss: float, **extra):
  return {"name": name, "eval_loss": loss, **extra}


def _repeat(of: str, seed: int, loss: float):
  return _row(f"{of}_seed{seed}", loss, seed=seed, repeat_of=of)


def test_seed_noise_pools_the_sd_of_log_loss_over_groups_by_their_dof():
  # Log-losses 0, +-0.02 (sd 0.02, 2 dof) and 1, 1.03 (variance 0.00045, 1 dof).
  rows = [_row("a", 1.0), _row("b", math.e), _row("alone", 2.0)]
  repeats = [
    _repeat("a", 1, math.exp(0.02)),
    _repeat("a", 2, math.exp(-0.02)),
    _repeat("b", 1, math.exp(1.03)),
    _repeat("gone", 1, 3.0),  # its row is not in the table: left out
  ]
  got = noise.seed_noise(rows, repeats)
  assert got is not None
  assert (got["dof"], got["num_groups"]) == (3, 2)
  assert got["sigma"] == pytest.approx(math.sqrt((2 * 0.02**2 + 0.00045) / 3))
  a, b = got["groups"]
  assert (a["name"], a["seeds"], a["sd"]) == ("a", [None, 1, 2], pytest.approx(0.02))
  assert a["losses"] == pytest.approx([1.0, math.exp(0.02), math.exp(-0.02)])
  assert (b["name"], b["seeds"], b["sd"]) == ("b", [None, 1], pytest.approx(0.03 / math.sqrt(2)))
  other = noise.seed_noise(
    [_row("a", 1.0, train_loss=2.0)], [_repeat("a", 1, 1.0) | {"train_loss": 2.2}], "train_loss"
  )
  assert other is not None and other["groups"][0]["losses"] == [2.0, 2.2]
  # without budgets every group counts as the largest budget's
  assert got["at_largest_budget"] == {
    "budget": None,
    "sigma": got["sigma"],
    "dof": 3,
    "num_groups": 2,
  }


def test_the_forecasts_floor_is_the_seed_noise_of_the_largest_budget_repeated():
  rows = [_row("short", 1.0, budget=1e10), _row("long", 1.0, budget=1e11)]
  repeats = [_repeat("short", 1, math.exp(0.1)), _repeat("long", 1, math.exp(0.01))]
  got = noise.seed_noise(rows, repeats)
  assert got is not None and got["sigma"] > 0.05  # the short runs' noise dominates the pool
  assert got["at_largest_budget"]["budget"] == 1e11
  assert got["at_largest_budget"]["sigma"] == pytest.approx(0.01 / math.sqrt(2))
  assert got["at_largest_budget"]["num_groups"] == 1


def test_seed_noise_is_none_without_a_group_of_two():
  rows = [_row("a", 1.0)]
  assert noise.seed_noise(rows, []) is None
  assert noise.seed_noise(rows, [_repeat("gone", 1, 1.1)]) is None
  assert noise.seed_noise(rows, [_repeat("a", 1, math.nan)]) is None  # one finite loss


def test_read_repeats(tmp_path):
  assert noise.read_repeats(str(tmp_path)) == []
  results.append_row(str(tmp_path), _repeat("a", 1, 1.0), noise.REPEATS_JSONL)
  assert noise.read_repeats(str(tmp_path)) == [_repeat("a", 1, 1.0)]
  assert results.read_results(str(tmp_path)) == []  # not in the table
  assert not os.path.exists(tmp_path / results.RESULTS_CSV)


def _noise_config(c, method: str):
  c = _sweep_config(c)
  c.scaling.method = method
  points = grid.plan_runs(c, 64)
  sizes = lr_search.by_size(points)
  size = max(sizes, key=lambda s: len(sizes[s]))  # one with points at both budgets
  c.scaling.noise_sizes = (size,)
  c.scaling.noise_seeds = (1, 3)
  return c, points, sizes[size]


@pytest.mark.parametrize("method", ["independent", "cooldown"])
def test_repeats_train_every_budget_of_a_size_from_scratch_with_each_seed(tiny_config, method):
  config, points, same_size = _noise_config(tiny_config, method)
  assert len(same_size) == 2
  repeats = noise.repeat_runs(config, points, {})
  main = {r.name: r for r in cooldown.plan_runs(config, points)}
  seeds = config.scaling.noise_seeds
  stable = cooldown.stable_name(same_size[0])
  if method == "cooldown":
    want = [f"{stable}_seed{s}" for s in seeds]
    want += [f"{p.name}_cooldown_seed{s}" for p in same_size for s in seeds]
  else:
    want = [f"{p.name}_seed{s}" for p in same_size for s in seeds]
  assert sorted(r.name for r in repeats) == sorted(want)
  for r in repeats:
    assert r.seed in seeds and r.name.endswith(f"_seed{r.seed}") and not r.lr_trial
    of = main[r.repeat_of]  # the run it repeats: same point, budget, steps and learning rate
    assert (r.budget, r.steps, r.learning_rate, r.warmup_steps, r.role) == (
      of.budget,
      of.steps,
      of.learning_rate,
      of.warmup_steps,
      of.role,
    )
    assert grid.run_config(config, r).seed == r.seed
    assert grid.run_overrides(r)["seed"] == r.seed
  adding = [r for r in repeats if r.adds_row]
  assert sorted(r.budget for r in adding) == sorted([p.budget for p in same_size] * 2)
  for r in repeats:  # from step 0; a cooldown's branch from its own seed's stable run
    want_from = f"{stable}_seed{r.seed}" if r.role == "branch" else ""
    assert r.branch_of == want_from and (r.role == "branch" or r.branch_step == 0)


def test_with_lr_grid_a_size_repeats_at_its_chosen_rate_once_chosen(tiny_config):
  config, points, same_size = _noise_config(tiny_config, "cooldown")
  config.scaling.lr_grid = (0.5, 1.0, 2.0)
  size = config.scaling.noise_sizes[0]
  assert noise.repeat_runs(config, points, {}) == []  # its trials have not chosen yet
  choice = {size: {"best_multiplier": 2.0}}
  repeats = noise.repeat_runs(config, points, choice)
  main = {r.name: r for r in lr_search.main_runs(config, points, choice)}
  assert {r.repeat_of for r in repeats} == set(main)
  stable = cooldown.stable_name(same_size[0])
  assert main[stable].branch_of == f"{stable}_lr2"  # the sweep's own goes on from its trial's
  for r in repeats:
    assert r.learning_rate == main[r.repeat_of].learning_rate
    assert r.learning_rate == pytest.approx(2 * same_size[0].learning_rate)
    if r.role == "stable":  # never from the seed-0 trial's checkpoint
      assert (r.branch_of, r.branch_step) == ("", 0)
    else:
      assert r.branch_of == f"{stable}_seed{r.seed}"


@pytest.mark.parametrize(
  ("sizes", "seeds", "message"),
  [
    (("L1_d8",), (), r"noise_sizes=\('L1_d8',\) and config\.scaling\.noise_seeds=\(\): give both"),
    ((), (1,), r"give both"),
    (("L1_d8",), (1, 1), r"noise_seeds=\(1, 1\): the seeds must be distinct positive integers"),
    (("L1_d8",), (0, 2), r"other than config\.seed=0"),
    (("L1_d8", "L1_d99"), (1,), r"noise_sizes: L1_d99 not in the plan; its sizes: L1_d"),
  ],
)
def test_noise_fields_a_plan_cannot_take_are_one_line_errors(tiny_config, sizes, seeds, message):
  config, points, _ = _noise_config(tiny_config, "independent")
  config.scaling.noise_sizes, config.scaling.noise_seeds = sizes, seeds
  with pytest.raises(ValueError, match=message) as e:
    noise.repeat_runs(config, points, {})
  assert "\n" not in str(e.value)


def test_the_sweeps_own_runs_keep_their_overrides_and_hash(tiny_config):
  config, points, _ = _noise_config(tiny_config, "cooldown")
  without = config.copy_and_resolve_references()
  del without.scaling["noise_sizes"]
  del without.scaling["noise_seeds"]
  empty = config.copy_and_resolve_references()
  empty.scaling.noise_sizes, empty.scaling.noise_seeds = (), ()
  repeats = {r.repeat_of: r for r in noise.repeat_runs(config, points, {})}
  for run in cooldown.plan_runs(config, points):
    assert run.seed == 0 and run.repeat_of == "" and "seed" not in grid.run_overrides(run)
    want = results.config_hash(grid.run_config(without, run))
    assert results.config_hash(grid.run_config(empty, run)) == want
    assert results.config_hash(grid.run_config(config, run)) == want
    if run.name in repeats:
      assert results.config_hash(grid.run_config(config, repeats[run.name])) != want


def _seeded_runner(trained: list[str]):
  """`_fake_branching_runner` whose eval loss grows with the run's seed by 1%."""
  inner = _fake_branching_runner(trained)

  def runner(config, run_dir):
    return {**inner(config, run_dir), "eval_loss": 3.0 * (1 + 0.01 * config.seed)}

  return runner


def test_repeat_rows_go_beside_the_table_and_finished_repeats_are_skipped(
  tiny_config, tmp_path, caplog
):
  config, points, same_size = _noise_config(tiny_config, "cooldown")
  workdir = str(tmp_path / "sweep")
  _, runs, _ = sweep.sweep_runs(config, sweep.vocab_size(config), workdir)
  repeats = [r for r in runs if r.seed]
  assert len(repeats) == 2 * (1 + len(same_size))
  trained: list[str] = []
  caplog.set_level("INFO", logger="lm.scaling.sweep")
  rows = sweep.run_sweep(config, workdir, _seeded_runner(trained))
  assert sorted(trained) == sorted(r.name for r in runs)
  for r in repeats:
    if r.branch_of:  # after its own stable run
      assert trained.index(r.branch_of) < trained.index(r.name)
  assert len(rows) == len(points) and not any("_seed" in r["name"] for r in rows)
  with open(os.path.join(workdir, results.RESULTS_CSV)) as f:
    assert "_seed" not in f.read()
  got = noise.read_repeats(workdir)
  assert sorted(r["name"] for r in got) == sorted(r.name for r in repeats if r.adds_row)
  names = {r["name"] for r in rows}
  assert all(r["repeat_of"] in names and r["name"].endswith(f"_seed{r['seed']}") for r in got)
  sigma = noise.seed_noise(rows, got)
  assert sigma is not None and sigma["num_groups"] == len(same_size)
  assert sigma["sigma"] == pytest.approx(np.std(np.log([3.0, 3.03, 3.09]), ddof=1))
  lines = [r.getMessage() for r in caplog.records if r.name == sweep.log.name]
  assert lines[0].startswith(f"plan: {len(runs)} runs, 0 done, {len(runs)} to train")
  with open(os.path.join(workdir, grid.PLAN_FILE)) as f:
    flops = json.load(f)["training_flops"]
  assert flops["this_sweep"] == pytest.approx(sum(r.flops_to_train for r in runs))

  trained.clear()
  assert len(sweep.run_sweep(config, workdir, _seeded_runner(trained))) == len(points)
  assert trained == [] and len(noise.read_repeats(workdir)) == len(got)


# A stand-in for experiments.train: writes the metrics.jsonl of a finished run whose eval loss
# grows with its seed by 1%.
_FAKE_TRAIN = """
import json, os, sys
flags = dict(a[2:].split("=", 1) for a in sys.argv[1:])
os.makedirs(flags["workdir"], exist_ok=True)
loss = 3.0 * (1 + 0.01 * int(flags.get("config.seed", 0)))
with open(os.path.join(flags["workdir"], "metrics.jsonl"), "w") as f:
  f.write(json.dumps({"step": int(flags["config.train.steps"]), "loss": loss, "eval_loss": loss,
                      "tokens_per_s": 1e4}) + "\\n")
"""


def test_worker_processes_train_the_repeats_with_their_seeds(tiny_config, tmp_path):
  config, points, same_size = _noise_config(tiny_config, "independent")
  workdir = str(tmp_path / "sweep")
  rows = workers.run_sweep_in_workers(config, [sys.executable, "-c", _FAKE_TRAIN], workdir, 1)
  assert len(rows) == len(points) and not any("_seed" in r["name"] for r in rows)
  got = noise.read_repeats(workdir)
  assert sorted((r["repeat_of"], r["seed"]) for r in got) == sorted(
    (p.name, s) for p in same_size for s in (1, 3)
  )
  sigma = noise.seed_noise(rows, got)
  assert sigma is not None
  assert sigma["sigma"] == pytest.approx(np.std(np.log([3.0, 3.03, 3.09]), ddof=1))
  assert len(workers.run_sweep_in_workers(config, ["false"], workdir, 1)) == len(points)


def test_emitted_commands_train_the_repeats_with_their_seeds(tiny_config, tmp_path):
  config, points, same_size = _noise_config(tiny_config, "independent")
  lines = sweep.commands(config, ["python", "-m", "experiments.train"], str(tmp_path / "w"))
  assert len(lines) == len(points) + 2 * len(same_size)
  repeats = [ln for ln in lines if "--config.seed=" in ln]
  assert len(repeats) == 2 * len(same_size)
  for line in repeats:
    seed = line.split("--config.seed=")[1].split()[0]
    assert f"_seed{seed} " in line  # its workdir is named for its seed
