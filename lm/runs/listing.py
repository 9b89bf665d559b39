"""The runs under a folder at a glance: each one's progress, last losses, speed and how it ended
(from its config.json, metrics.jsonl and status.json), as a table."""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import time

from etils import epath

from lm.runs import metrics, run_files
from lm.runtime import paths

# Beyond run_files.py's statuses: a RUNNING run on this host whose process is gone (killed without a
# word, e.g. SIGKILL or the OOM killer), one on another host (it may be running or be gone), a
# run from before status.json that did not reach its last step, and a run whose files hold what
# no run writes (run_files.UnreadableRun: the detail says which file and field).
KILLED, MAYBE_RUNNING, UNKNOWN, UNREADABLE = "killed", "running?", "unknown", "unreadable"


@dataclasses.dataclass
class RunSummary:
  name: str
  step: int
  steps: int
  # None where the run logged none yet (an eval loss before the first evaluation)
  train_loss: float | None
  eval_loss: float | None
  tokens_per_s: float | None
  status: str
  detail: str  # what stopped it: a signal, an error, the watchdog's message
  updated: float | None  # when metrics.jsonl was last written (seconds since the epoch)


def find_runs(root: str) -> list[str]:
  """The run workdirs at or below `root` (folders with config.json and model.json), sorted; the
  folders inside a run are not searched."""
  found = []

  def walk(folder: epath.Path) -> None:
    if run_files.is_run(str(folder)):
      found.append(str(folder))
      return
    for child in sorted(folder.iterdir()):
      if child.is_dir() and not child.name.startswith("."):
        walk(child)

  top = paths.run_path(root)
  if not top.is_dir():
    raise FileNotFoundError(f"{root} is not a folder")
  walk(top)
  return found


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # alive, but another user's
    pass
  return True


def _status(recorded: dict | None, step: int, steps: int) -> tuple[str, str]:
  """(status, detail) from what status.json holds (`recorded`) and how far the run got."""
  if recorded is None:
    return (run_files.FINISHED if step >= steps else UNKNOWN), ""
  status = run_files.checked(recorded.get("status"), str, "status.json's status")
  if status != run_files.RUNNING:
    return status, run_files.checked(recorded.get("detail") or "", str, "status.json's detail")
  if recorded.get("host") != socket.gethostname():
    return MAYBE_RUNNING, f"on {recorded.get('host')}"
  pid = run_files.checked(recorded.get("pid"), int, "status.json's pid")
  if not _alive(pid):
    return KILLED, f"process {pid} is gone without recording how it ended"
  return run_files.RUNNING, ""


def _recorded(workdir: str) -> dict | None:
  """What status.json holds (None: no status), checked to be an object with an integer step."""
  recorded = run_files.read_status(workdir)
  if recorded is not None and not isinstance(recorded, dict):
    raise run_files.UnreadableRun("status.json is not a JSON object")
  if recorded is not None:
    run_files.checked(recorded.get("step") or 0, int, "status.json's step")
  return recorded


def summarise(workdir: str, name: str) -> RunSummary:
  """One run's row: last step of its schedule, last train and eval loss, last tokens/s, status;
  a run whose files cannot be read is UNREADABLE, with the reason as its detail."""
  path = paths.run_path(workdir) / "metrics.jsonl"
  updated = float(path.stat().mtime) if path.exists() else None
  try:
    rows = metrics.read_checked_metrics(workdir)
    steps = run_files.read_config_field(workdir, "train.steps", int)
    recorded = _recorded(workdir)
    step = max(int(rows[-1]["step"]) if rows else 0, (recorded or {}).get("step") or 0)
    status, detail = _status(recorded, step, steps)
  except run_files.UnreadableRun as e:
    return RunSummary(name, 0, 0, None, None, None, UNREADABLE, str(e), updated)

  def last(key: str) -> float | None:
    return next((float(r[key]) for r in reversed(rows) if key in r), None)

  return RunSummary(
    name,
    step,
    steps,
    last("loss"),
    last("eval_loss"),
    last("tokens_per_s"),
    status,
    detail,
    updated,
  )


def named_runs(root: str) -> list[tuple[str, str]]:
  """(workdir, name) of every run at or below `root`: names are paths that start as `root` was
  given (`runs/sweep/C1e12_L2`), so that those found under several folders stay apart."""
  top = str(paths.run_path(root))
  given = root.rstrip("/") or root
  return [
    (w, given if w == top else os.path.join(given, os.path.relpath(w, top)))
    for w in find_runs(root)
  ]


def _age(seconds: float) -> str:
  for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
    if seconds >= size:
      return f"{seconds / size:.0f}{unit} ago"
  return f"{seconds:.0f}s ago"


def _number(value: float | None, spec: str) -> str:
  """`value` formatted by `spec`; '-' where there is none (a non-finite one prints as such)."""
  if value is None:
    return "-"
  return format(value, spec) if math.isfinite(value) else str(value)


def format_table(summaries: list[RunSummary], now: float | None = None) -> str:
  """A fixed-width table, one run a line: '-' for a loss not logged yet; the detail column cut
  to 70 characters."""
  now = time.time() if now is None else now
  head = ("run", "step", "train loss", "eval loss", "tokens/s", "status", "updated", "detail")
  lines: list[tuple[str, ...]] = [head]
  for s in summaries:
    lines.append(
      (
        s.name,
        "-" if s.status == UNREADABLE else f"{s.step}/{s.steps}",
        _number(s.train_loss, ".4f"),
        _number(s.eval_loss, ".4f"),
        _number(s.tokens_per_s, ",.0f"),
        s.status,
        "-" if s.updated is None else _age(max(0.0, now - s.updated)),
        s.detail.splitlines()[0][:70] if s.detail else "",
      )
    )
  widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)
