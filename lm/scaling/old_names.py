"""The names older sweeps saved, and their translation: the one place that reads them.

A config's scaling section (a config file or a run's config.json from before the renames) may
name the width step `head_dim` and the ladder's size `max_num_layers`; a sweep's `sweep.json`
from before `RunPlan.role` gives each planned run's part as its `method` ('independent' for a
grid point trained as a run of its own, 'stable', 'cooldown' for a branch). A run's identity
(its config hash) leaves the scaling section out, so the renames change no run's identity.
"""

from __future__ import annotations

from typing import Any

import ml_collections

SCALING_FIELDS = {"head_dim": "width_step", "max_num_layers": "ladder_size"}  # old: new
PLAN_ROLES = {"independent": "point", "stable": "stable", "cooldown": "branch"}  # method: role


def upgrade_scaling(config) -> ml_collections.ConfigDict:
  """`config.scaling` under today's field names: a field set under its old name takes its new
  name's place (a copy; the section itself where it has no old names)."""
  scaling = config.scaling
  if not any(old in scaling for old in SCALING_FIELDS):
    return scaling
  fields = scaling.to_dict()
  for old, new in SCALING_FIELDS.items():
    if old in fields:
      fields[new] = fields.pop(old)
  return ml_collections.ConfigDict(fields)


def upgrade_plan(saved: dict[str, Any]) -> dict[str, Any]:
  """A `sweep.json` (`grid.save_plan`) as it is written today: a planned run saved before
  `RunPlan.role` gets the role its `method` stood for. Changes `saved` and returns it."""
  for run in [*saved.get("runs", []), *saved.get("stable_runs", [])]:
    if "role" not in run:
      run["role"] = PLAN_ROLES[run.pop("method")]
  return saved
