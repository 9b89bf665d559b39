"""A run's files: what a training run writes to its workdir (config, model, tokenizer, how it
ended), the checks of a workdir before a run starts there, and reading them back."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from typing import Any

import ml_collections
from etils import epath

from lm.data.tokenizer import Tokenizer, load_tokenizer, tokenizer_hash
from lm.model import config as model_config
from lm.model.config import TransformerConfig
from lm.runs import compat, lineage
from lm.runtime import paths
from lm.training.config_checks import ConfigError

# What a run's identity leaves out: a sweep's plan (more sizes or budgets leave a run as it
# was), the execution (how fast a step runs, not what it computes), and the fields that change
# how the loop reports, saves and watches, not what it trains. A sweep skips a run whose
# identity it has finished; a resume may change only these fields.
FIELDS_OUTSIDE_IDENTITY = (
  "scaling",
  "execution",
  "train.log_every",
  "train.checkpoint_every",
  "train.keep_checkpoints",
  "train.keep_steps",
  "train.async_checkpoints",
  "train.stop_after_steps",
  "train.steps_per_dispatch",
  "train.watchdog_s",
  "train.wandb_project",
  "train.wandb_mode",
  "data.num_threads",
  "data.prefetch",
  "data.data_dir",
)

# A run's state in `<workdir>/status.json`: RUNNING from its start until it ends in one of the
# others (a process killed outright, e.g. SIGKILL, leaves RUNNING behind).
RUNNING, FINISHED, PREEMPTED, FAILED, STALLED = (
  "running",
  "finished",
  "preempted",
  "failed",
  "stalled",
)
STATUS_FILE = "status.json"

log = logging.getLogger(__name__)


def identity(fields: dict[str, Any]) -> dict[str, Any]:
  """A config's fields (`ConfigDict.to_dict()`) without FIELDS_OUTSIDE_IDENTITY, nor the fields
  of compat.NEUTRAL_IN_IDENTITY at their neutral value: what a run trains."""
  fields = {k: dict(v) if isinstance(v, dict) else v for k, v in fields.items()}
  for name in FIELDS_OUTSIDE_IDENTITY:
    section, _, field = name.partition(".")
    if field:
      fields.get(section, {}).pop(field, None)
    else:
      fields.pop(section, None)
  for name, neutral in compat.NEUTRAL_IN_IDENTITY.items():
    section, _, field = name.partition(".")
    if fields.get(section, {}).get(field, neutral) == neutral:
      fields.get(section, {}).pop(field, None)
  return fields


def _changed_fields(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """'a.b=new (the run's: old)' for each field of what a run trains that differs; a field the
  saved config lacks (older than the field) is not compared."""
  changes = lineage.field_changes(saved, new)
  return [f"{k}={new!r} (the run's: {old!r})" for k, (old, new) in changes.items()]


class UnreadableRun(ConfigError):
  """A run whose files hold what no run writes (a config.json of `{}`, a metrics row whose step
  is "x", a status.json whose pid is "abc", a truncated file); the message names the file and
  what is wrong. A ConfigError: a run resumed from such files fails in one line."""


def _read_json(path: epath.Path) -> Any:
  """A run file's JSON; UnreadableRun naming the file where it is not JSON (truncated)."""
  try:
    return json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UnreadableRun(f"{path} is not valid JSON ({e}): a truncated or damaged run file") from e


def check_workdir(
  workdir: str,
  model_cfg: TransformerConfig,
  config: ml_collections.ConfigDict,
  allow_config_change: bool = False,
) -> None:
  """Raises ConfigError if `workdir` cannot hold this run: a file, not writable, a run with
  checkpoints whose architecture differs (restoring would fail), or one trained with other
  settings (steps, schedule, data, ...) unless `allow_config_change`. Nothing is written first.
  """
  root = paths.run_path(workdir)
  if not paths.is_remote(root):
    if root.exists() and not root.is_dir():
      raise ConfigError(f"--workdir={workdir} is a file, not a folder")
    try:
      root.mkdir(parents=True, exist_ok=True)
      probe = root / f".write_test.{os.getpid()}"  # one per process: several may share root
      probe.write_text("")
      probe.unlink()
    except OSError as e:
      raise ConfigError(f"--workdir={workdir} is not writable: {e.strerror or e}") from None
  stored = root / "model.json"
  checkpoints = root / "checkpoints"
  if not (stored.exists() and checkpoints.exists() and any(checkpoints.iterdir())):
    return
  old, new = _read_json(stored), dataclasses.asdict(model_cfg)
  differ = [
    f"{'the padded vocab_size' if k == 'vocab_size' else 'config.model.' + k}="
    f"{new[k]!r} (the run's: {old[k]!r})"
    for k in new
    if k in old and old[k] != new[k]
  ]
  if differ:
    raise ConfigError(
      f"--workdir={workdir} holds a run of another model, whose checkpoints "
      f"cannot be restored: {', '.join(differ)}; use a new --workdir, or the "
      f"run's config ({root / 'config.json'})"
    )
  saved = config_file(workdir)
  if not saved.exists():
    return
  saved_config = _read_json(saved)  # read even when a change is allowed: resuming compares it
  if allow_config_change:
    return
  changed = _changed_fields(
    identity(saved_config), identity(json.loads(config.to_json_best_effort()))
  )
  if changed:
    raise ConfigError(
      f"--workdir={workdir} holds a run trained with other settings: "
      f"{', '.join('config.' + c for c in changed)}; resume with the run's values (drop "
      f"those overrides, or set them as {saved} holds them), use a new --workdir, or pass "
      "--allow_config_change to continue with these "
      f"(they become the run's config; {lineage.HISTORY_FILE} records the change)"
    )


def write_run_files(
  workdir: str,
  config: ml_collections.ConfigDict,
  model_cfg: TransformerConfig,
  tokenizer: Tokenizer,
  resumed_step: int | None = None,
) -> None:
  """Writes `config.json`, `model.json` (the architecture) and the tokenizer to `workdir`, each
  whole or not at all.

  `config.json` is the config the run trains with now: a resume whose config differs replaces
  it, after recording the changed fields and `resumed_step` in config_history.jsonl (lineage.py)
  and logging them.
  """
  root = paths.run_path(workdir)
  root.mkdir(parents=True, exist_ok=True)
  if resumed_step is not None:
    _check_same_tokenizer(workdir, tokenizer)
  tokenizer.save(str(root))
  text = config.to_json_best_effort(indent=2)
  saved = config_file(workdir)
  if resumed_step is not None and saved.exists():
    before = compat.upgrade_config(ml_collections.ConfigDict(_read_json(saved))).to_dict()
    changes = lineage.field_changes(before, json.loads(text))
    if changes:
      lineage.record(root, resumed_step, changes)
      log.info("config changed at step %d: %s", resumed_step, lineage.describe(changes))
  current = root / "config.json"
  if resumed_step is None or not current.exists() or current.read_text() != text:
    paths.write_atomically(current, text)
  paths.write_atomically(root / "model.json", json.dumps(dataclasses.asdict(model_cfg), indent=2))


def config_file(workdir: str) -> epath.Path:
  """The file of the config a run in `workdir` trains with now: its config.json, or for a run
  saved before config_history.jsonl that a resume changed, its newest `config.step<N>.json`."""
  root = paths.run_path(workdir)
  if not (root / lineage.HISTORY_FILE).exists():
    legacy = compat.legacy_config_file(root)
    if legacy is not None:
      return legacy
  return root / "config.json"


def _check_same_tokenizer(workdir: str, tokenizer: Tokenizer) -> None:
  """ConfigError unless a resumed run's data uses the tokenizer the run was trained with."""
  try:
    saved = load_tokenizer(workdir)
  except FileNotFoundError:
    return
  if tokenizer_hash(saved) != tokenizer_hash(tokenizer):
    raise ConfigError(
      f"{workdir} was trained with a tokenizer (hash {tokenizer_hash(saved)}) other than its "
      f"data's ({tokenizer_hash(tokenizer)}): the data was prepared again with another one; "
      "point config.data.data_dir at the data the run trained on"
    )


def is_run(workdir: str) -> bool:
  """Whether `workdir` holds a training run's files (config.json and model.json)."""
  root = paths.run_path(workdir)
  return (root / "config.json").exists() and (root / "model.json").exists()


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run in `workdir` trains with (`config_file`; fields added since it was saved
  filled in as it trained)."""
  if not is_run(workdir):
    raise FileNotFoundError(f"{workdir} holds no training run (no config.json and model.json)")
  saved = _read_json(config_file(workdir))
  return compat.upgrade_config(ml_collections.ConfigDict(saved))


def read_model_config(workdir: str) -> TransformerConfig:
  """The architecture of the run in `workdir` (its model.json)."""
  model_json = _read_json(paths.run_path(workdir) / "model.json")
  return TransformerConfig(
    **{k: model_json[k] for k in model_config.fields_of(TransformerConfig) if k in model_json}
  )


def write_status(workdir: str, status: str, step: int | None = None, detail: str = "") -> None:
  """Records the run's state (RUNNING, FINISHED, ...) with the step, what stopped it, the time,
  host and process id, in `<workdir>/status.json` (replaced whole: a write that fails leaves the
  previous one)."""
  row = {
    "status": status,
    "step": step,
    "detail": detail,
    "time": time.time(),
    "host": socket.gethostname(),
    "pid": os.getpid(),
  }
  paths.write_atomically(paths.run_path(workdir) / STATUS_FILE, json.dumps(row) + "\n")


def checked(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
  """`value` if it is a `kind` (a bool is no number), else UnreadableRun: '`what` is ...'."""
  if isinstance(value, kind) and not isinstance(value, bool):
    return value
  raise UnreadableRun(f"{what} is missing" if value is None else f"{what} is {value!r}")


def read_config_field(workdir: str, name: str, kind: type | tuple[type, ...]) -> Any:
  """The field `name` ('train.steps') of the config the run trains with now (`config_file`),
  checked to be a `kind` (UnreadableRun if it is not, or the file is not JSON)."""
  value = _read_json(config_file(workdir))
  for part in name.split("."):
    value = value.get(part) if isinstance(value, dict) else None
  return checked(value, kind, f"config.json's {name}")


def read_status(workdir: str) -> dict[str, Any] | None:
  """What `write_status` last recorded in `workdir`, or None (a run from before status.json,
  or a file cut short)."""
  path = paths.run_path(workdir) / STATUS_FILE
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text())
  except ValueError:
    return None
