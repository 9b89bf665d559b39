"""lm-evaluation-harness tasks run on a model (lm/infer/harness.py): the task names checked,
`lm_eval.simple_evaluate` run, its results written as JSON and shown as its table; a name it
does not know or data that is not here is a ValueError of one line.

Offline, a task reads local data only: a task YAML (`dataset_path: json`, `dataset_kwargs:
{data_files: {test: /path/x.jsonl}}`) in a folder given as `include_path`, or a hub task
whose data is already in Hugging Face's cache (with HF_DATASETS_OFFLINE=1).
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
from collections.abc import Sequence
from typing import Any

from lm.infer import harness

_evaluator = importlib.import_module("lm_eval.evaluator")
_tasks = importlib.import_module("lm_eval.tasks")
_utils = importlib.import_module("lm_eval.utils")

MISSING_DATA = (
  "a task's data is not here ({error}): offline, point a task YAML's dataset_path: json and "
  "dataset_kwargs: {{data_files: {{test: FILE.jsonl}}}} at local data, in a folder given as "
  "--include_path, or run once online and then with HF_DATASETS_OFFLINE=1 from the cache"
)


def task_manager(include_path: str | Sequence[str] | None, include_defaults: bool = True) -> Any:
  """lm-eval's TaskManager: its own tasks (unless not `include_defaults`) and those under
  `include_path` (a folder or several)."""
  return _tasks.TaskManager(include_path=include_path, include_defaults=include_defaults)


def check_names(
  names: Sequence[str],
  manager: Any,
  flags: tuple[str, str] = ("--tasks", "--include_path"),
  also_known: Sequence[str] = (),
) -> None:
  """ValueError naming the first task that neither `manager` nor `also_known` (tasks written
  later, e.g. a sweep's own) knows, with close names; `flags` name where the tasks and the
  local folder were given."""
  known = [*also_known, *manager.all_tasks]
  for name in names:
    if name not in known and not os.path.isfile(name):
      close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
      hint = f"; close names: {', '.join(close)}" if close else ""
      tasks, folder = flags
      raise ValueError(f"{tasks}: no task {name!r} in lm-eval's tasks or {folder}{hint}")


def evaluate(
  lm: harness.HarnessLM,
  names: Sequence[str],
  *,
  manager: Any,
  num_fewshot: int | None = 0,
  limit: int | None = None,
) -> dict[str, Any]:
  """lm-eval's results dict ('results', 'configs', 'versions', 'n-shot', ...) of `lm` on the
  tasks `names` (of `manager`), without per-sample logs."""
  check_names(names, manager)
  try:
    results = _evaluator.simple_evaluate(
      model=lm,
      tasks=list(names),
      num_fewshot=num_fewshot,
      limit=limit,
      task_manager=manager,
      log_samples=False,
    )
  except (FileNotFoundError, ConnectionError) as e:
    raise ValueError(MISSING_DATA.format(error=str(e).splitlines()[0])) from e
  if results is None:
    raise ValueError("lm-eval returned no results (not the main process)")
  return results


def to_json(results: dict[str, Any]) -> str:
  """`results` as lm-eval writes them (numpy values as numbers, the rest as text)."""
  return json.dumps(results, indent=2, default=_utils.handle_non_serializable)


def table(results: dict[str, Any], column: str = "results") -> str:
  """The Markdown table lm-eval prints (`lm_eval.utils.make_table`'s rows: a task's metrics,
  one a line, with direction, value and standard error), of the tasks or of their 'groups'.

  Not make_table itself: the pytablewriter that requirements.lock's python-dateutil admits
  (0.38) drops its headers and builds the table in forked processes, which JAX's threads
  may deadlock.
  """
  name = "Groups" if column == "groups" else "Tasks"
  rows = [[name, "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr"]]
  for task, metrics in results[column].items():
    better = results.get("higher_is_better", {}).get(task, {})
    shots = str(results["n-shot"].get(task, ""))
    label = [task, str(results["versions"].get(task, "N/A"))]  # on the task's first line only
    for key, value in sorted(metrics.items()):
      metric, _, filtered = key.partition(",")
      if not filtered or metric.endswith("_stderr"):
        continue  # alias, name, sample_len; the standard errors go beside their metric
      stderr = metrics.get(f"{metric}_stderr,{filtered}", "")
      direction = {True: "↑", False: "↓"}.get(better.get(metric), "")
      shown = f"{value:.4f}" if isinstance(value, float) else str(value)
      error = f"{stderr:.4f}" if isinstance(stderr, float) else str(stderr)
      rows.append([*label, filtered, shots, metric, direction, shown, "±" * (error != ""), error])
      label = ["", ""]
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = ["|" + "|".join(c.ljust(w) for c, w in zip(r, widths)) + "|" for r in rows]
  lines.insert(1, "|" + "|".join("-" * w for w in widths) + "|")
  text = "\n".join(lines)
  if column == "results" and results.get("groups"):
    text += "\n\n" + table(results, "groups")
  return text
