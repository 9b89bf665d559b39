"""A run's config lineage: the fields a resume changed, and `config_history.jsonl`, one row per
accepted change (the step it took effect at, each changed field before and after). The run's
config.json is always the config it trains with now; the history says how it got there."""

from __future__ import annotations

import json
import time
from typing import Any

from etils import epath

from lm.runtime import paths

HISTORY_FILE = "config_history.jsonl"


def _same(a: Any, b: Any) -> bool:
  """Equal as JSON (a tuple and a list of the same items are the same field)."""
  return json.dumps(a, default=str) == json.dumps(b, default=str)


def field_changes(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
  """{'train.steps': (old, new)} for each field that differs, in `new`'s order; a field the
  saved config lacks (it is older than the field) is not compared."""
  out: dict[str, tuple[Any, Any]] = {}
  for key, value in new.items():
    if key not in saved:
      continue
    if isinstance(value, dict) and isinstance(saved[key], dict):
      out.update({f"{key}.{k}": v for k, v in field_changes(saved[key], value).items()})
    elif not _same(value, saved[key]):
      out[key] = (saved[key], value)
  return out


def describe(changes: dict[str, tuple[Any, Any]]) -> str:
  """'config.train.steps=700 (was 600), ...'."""
  return ", ".join(f"config.{k}={new!r} (was {old!r})" for k, (old, new) in changes.items())


def record(root: epath.Path, step: int, changes: dict[str, tuple[Any, Any]]) -> None:
  """Appends a row for `changes`, accepted when the run resumed at `step`, to the history in
  `root` (the file replaced whole: a failed write leaves the previous history)."""
  row = {
    "step": step,
    "time": time.time(),
    "before": {k: old for k, (old, _) in changes.items()},
    "after": {k: new for k, (_, new) in changes.items()},
  }
  path = root / HISTORY_FILE
  previous = path.read_text() if path.exists() else ""
  paths.write_atomically(path, previous + json.dumps(row, default=str) + "\n")


def read_history(workdir: str) -> list[dict[str, Any]]:
  """The rows of a run's `config_history.jsonl`, oldest first (none if it never changed)."""
  path = paths.run_path(workdir) / HISTORY_FILE
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
