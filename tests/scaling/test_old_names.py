"""Names older sweeps saved (lm/scaling/old_names.py): a config's scaling section and a
sweep.json from before the renames read as today's."""

import json
import os

from test_sweep import _sweep_config

from conftest import REPO
from experiments.configs import base
from lm.scaling import cooldown, grid, old_names

COMMITTED = os.path.join(REPO, "results", "scaling_cpu")


def test_a_config_with_the_old_field_names_plans_the_same_grid(tiny_config):
  config = _sweep_config(tiny_config)
  old = config.copy_and_resolve_references()  # as an older config file sets it on base.py's
  defaults = base.get_config().scaling
  old.scaling.width_step, old.scaling.head_dim = defaults.width_step, config.scaling.width_step
  old.scaling.ladder_size = defaults.ladder_size
  old.scaling.max_num_layers = config.scaling.ladder_size
  assert old.scaling.width_step != config.scaling.width_step
  assert grid.ladder(old, 64) == grid.ladder(config, 64)
  assert grid.plan_runs(old, 64) == grid.plan_runs(config, 64)


def test_an_old_plan_file_gives_each_run_its_role(tmp_path):
  """A sweep.json from before `RunPlan.role` gave each run's part as `method` (the committed
  study's, rewritten as such a sweep saved it); read, as `role`."""
  with open(os.path.join(COMMITTED, grid.PLAN_FILE)) as f:
    saved = json.load(f)
  methods = {role: method for method, role in old_names.PLAN_ROLES.items()}
  for run in saved["runs"] + saved["stable_runs"]:
    run["method"] = methods[run.pop("role")]
  old = str(tmp_path / grid.PLAN_FILE)
  with open(old, "w") as f:
    json.dump(saved, f)
  assert {r["method"] for r in saved["runs"]} == {"independent"}
  plan = grid.load_plan(old)
  assert plan["method"] == "cooldown"  # the sweep's method stays
  assert {r["role"] for r in plan["runs"]} == {"point"}
  assert {r["role"] for r in plan["stable_runs"]} == {"stable"}
  assert not any("method" in r for r in plan["runs"] + plan["stable_runs"])
  assert len(plan["runs"]) == len(saved["runs"])


def test_a_plan_file_keeps_the_roles(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  config.scaling.method = "cooldown"
  runs = cooldown.plan_runs(config, grid.plan_runs(config, 64))
  path = str(tmp_path / grid.PLAN_FILE)
  grid.save_plan(path, config, runs)
  roles = [r["role"] for r in grid.load_plan(path)["runs"]]
  assert roles == [p.role for p in runs] and {"stable", "branch"} == set(roles)
