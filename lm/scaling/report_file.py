"""Where `experiments.fit_scaling` writes its report: never silently over a richer one.

Asked for (`--out`), the report goes there, replacing what was there. Otherwise it goes to
`fit.json` beside the results only where no file is there or that file holds nothing the new
report lacks (a refit without `--predict_flops` would drop the `prediction` that
`experiments.sweep --verify` reads, and a committed fit with it).
"""

from __future__ import annotations

import json
import os
from typing import Any

# Entries that say what a fit could not do (an approach's or the backtest's `error`, the rows it
# left out): a report without them holds more, not less.
PROBLEMS = ("error", "rows_left_out")


def lacks(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
  """The entries of `old` (dotted keys) that `new` lacks: absent or None there while `old` has
  a value (`PROBLEMS` aside); nested dicts entry by entry."""
  out = []
  for key, value in old.items():
    if value is None or key in PROBLEMS:
      continue
    if new.get(key) is None:
      out.append(prefix + key)
    elif isinstance(value, dict) and isinstance(new[key], dict):
      out += lacks(value, new[key], f"{prefix}{key}.")
  return out


def write(report: dict[str, Any], asked: str | None, beside: str) -> str:
  """Writes `report` to `asked` (`--out`), else to `beside` unless the file there holds entries
  the report lacks; returns the line that says where it wrote, or why it did not."""
  path = asked or beside
  if not asked and os.path.exists(beside):
    with open(beside) as f:
      missing = lacks(json.load(f), report)
    if missing:
      return (
        f"{beside} not written: it holds {', '.join(missing[:5])}"
        f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}, which this fit lacks; "
        f"--out=PATH writes this fit elsewhere, --out={beside} replaces it"
      )
  with open(path, "w") as f:
    json.dump(report, f, indent=2)
  return f"wrote {path}"
