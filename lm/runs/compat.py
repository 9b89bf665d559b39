"""Runs saved by older versions: the fields their files lack, filled with what such a run
trained with, in one place. Every reader of a run's config.json goes through here."""

from __future__ import annotations

import re
from typing import Any

import ml_collections
from etils import epath

from lm.model import config as model_config
from lm.model.config import ExecutionConfig

# Config fields added after runs had been saved, with the value such a run trained with.
ADDED_FIELDS: dict[str, Any] = {
  "optim.freeze_embeddings": False,  # nothing frozen
  "optim.freeze_layers": 0,
  "optim.name": "adamw",
  "optim.adam_learning_rate": 0.0,
  "data.encoding": "utf-8",
  "data.decode_errors": "replace",  # bad bytes were replaced before strict decoding
  "data.document_masking": False,
  "data.sample_seed": 0,
  "data.format": "auto",
  "scaling.noise_sizes": (),  # no seed repeats
  "scaling.noise_seeds": (),
  "scaling.verify_seeds": (),  # one verification run
  "scaling.lr_horizon_power": 0.0,  # the trials' learning rate at every horizon
  "scaling.eval_tasks": (),  # no task scores (scaling is outside a run's identity)
  "scaling.eval_include_path": "",
  "scaling.eval_limit": 0,
  "model.mup_output_multiplier": 1.0,  # μP's logits / m
}

# Fields added after the committed studies' runs were hashed (lm/scaling/results.py): at the
# value those runs trained with, a run's identity leaves them out, so adding them renamed no
# finished run.
NEUTRAL_IN_IDENTITY: dict[str, Any] = {"model.mup_output_multiplier": 1.0}


def upgrade_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` (a saved run's) with every field of ADDED_FIELDS it lacks set as the run
  trained."""
  for name, value in ADDED_FIELDS.items():
    section, field = name.split(".")
    if section in config and field not in config[section]:
      config[section][field] = value
  return config


def legacy_config_file(root: epath.Path) -> epath.Path | None:
  """The config a run saved before config_history.jsonl trains with, where it is not its
  config.json: such runs kept config.json as first trained and wrote the config of each resume
  that changed it beside it as `config.step<N>.json` (N the step it resumed from), so the one of
  the largest N. None where there is none."""
  steps = {}
  for path in root.glob("config.step*.json"):
    match = re.fullmatch(r"config\.step(\d+)\.json", path.name)
    if match:
      steps[int(match.group(1))] = path
  return steps[max(steps)] if steps else None


def execution_config(
  config: ml_collections.ConfigDict, model_json: dict[str, Any]
) -> ExecutionConfig:
  """A saved run's execution config: its config's section, or for runs saved before the
  model config was split in two, the execution fields of its model.json."""
  if "execution" in config:
    return model_config.execution(config.execution)
  fields = model_config.fields_of(ExecutionConfig)
  return ExecutionConfig(**{k: model_json[k] for k in fields if k in model_json})
