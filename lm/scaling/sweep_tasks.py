"""Task accuracy in a scaling sweep: with `config.scaling.eval_tasks`, each finished run that
adds a row to results.jsonl (an independent run, a cooldown branch) is scored on those
lm-evaluation-harness tasks (lm/infer/harness.py) where it trained, and its row gets a column
per task metric, `task_<task>_<metric>` (with `..._stderr`, and `task_<task>_chance` where the
task's metadata gives the accuracy of a guess). The harness's results are kept beside the run as
`harness_step<N>.json`, the file `experiments.evaluate --tasks` writes.

`corpus_next_line` is a task the sweep writes itself (`<workdir>/tasks/`, lm/infer/
next_line_task.py): a line of the held-out split of the runs' corpus and its true next line
among four, offline. Rows that lack a task's columns (trained before the field was set, by a
worker process of its own, or from `--emit_commands`) are scored by the sweep's own process
(`fill_missing`).

Needs lm-eval (the optional eval extra): a sweep with tasks set fails up front without it.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import shutil
from typing import Any

import numpy as np

from lm.data import token_cache
from lm.infer import next_line_task
from lm.runs import loading
from lm.runtime import paths
from lm.scaling import results
from lm.training.config_checks import ConfigError

log = logging.getLogger(__name__)

NEXT_LINE = "corpus_next_line"  # the task the sweep writes from its corpus's held-out split
TASKS_DIR = "tasks"  # <workdir>/tasks: where it goes
NEXT_LINE_DOCS = 200
NEXT_LINE_TOKENS = 200_000  # of the held-out split, from its start


def check(config) -> None:
  """ConfigError in one line where `scaling.eval_tasks` is set but lm-eval is not installed, or
  `eval_limit` / `eval_include_path` are not valid."""
  scaling = config.scaling
  if not scaling.eval_tasks:
    return
  try:
    importlib.import_module("lm.infer.harness_tasks")
  except ImportError as e:
    raise ConfigError(f"config.scaling.eval_tasks={tuple(scaling.eval_tasks)}: {e}") from e
  if scaling.eval_limit < 0:
    raise ConfigError(f"config.scaling.eval_limit={scaling.eval_limit}: >= 0 (0: every document)")
  if scaling.eval_include_path and not os.path.isdir(scaling.eval_include_path):
    raise ConfigError(
      f"config.scaling.eval_include_path={scaling.eval_include_path!r} is not a folder of task "
      "YAMLs"
    )


def start(config, workdir: str) -> None:
  """Before a sweep trains: `check`, `prepare`, then a ValueError naming a task that neither
  lm-eval nor the local folders know (with close names). A workdir it made for that is removed
  again where the tasks are refused."""
  check(config)
  if not config.scaling.eval_tasks:
    return
  made = not os.path.exists(workdir)
  os.makedirs(workdir, exist_ok=True)
  try:
    prepare(config, workdir)
    from lm.infer import harness_tasks

    names = tuple(config.scaling.eval_tasks)
    manager = _manager(names, _include_paths(config, workdir))
    fields = ("config.scaling.eval_tasks", "config.scaling.eval_include_path")
    harness_tasks.check_names(names, manager, fields, also_known=(NEXT_LINE,))
  except Exception:
    if made:
      shutil.rmtree(workdir, ignore_errors=True)
    raise


def prepare(config, workdir: str) -> None:
  """Writes `corpus_next_line` into `<workdir>/tasks` where `scaling.eval_tasks` names it: from
  the first NEXT_LINE_TOKENS tokens of the corpus's held-out split (`data.eval_split`),
  NEXT_LINE_DOCS documents drawn with `config.seed`, of lines of at most half the model's
  context (`model.max_seq_len`) in characters."""
  if NEXT_LINE not in config.scaling.eval_tasks:
    return
  data = token_cache.tokenized_data(config.data)
  held_out = data.splits[config.data.eval_split]
  text = data.tokenizer.decode(np.asarray(held_out[: min(len(held_out), NEXT_LINE_TOKENS)]))
  try:
    # A line and its choices fit the model's context together (a token is a character or more).
    max_chars = config.model.max_seq_len // 2
    documents = next_line_task.make_documents(text, NEXT_LINE_DOCS, config.seed, max_chars)
  except ValueError as e:
    raise ConfigError(f"config.scaling.eval_tasks: {NEXT_LINE}: {e}") from e
  next_line_task.write_task(os.path.join(workdir, TASKS_DIR), NEXT_LINE, documents)


def _include_paths(config, workdir: str) -> tuple[str, ...]:
  """The folders of local task YAMLs: `scaling.eval_include_path` and the sweep's own."""
  own = [os.path.join(workdir, TASKS_DIR)] if NEXT_LINE in config.scaling.eval_tasks else []
  given = [config.scaling.eval_include_path] if config.scaling.eval_include_path else []
  return tuple(os.path.abspath(p) for p in given + own)


@functools.lru_cache(maxsize=4)
def _manager(names: tuple[str, ...], include: tuple[str, ...]) -> Any:
  """lm-eval's TaskManager for `names`: the local tasks only where they hold every name
  (indexing lm-eval's own ~15k tasks takes ~30 s), else with lm-eval's own."""
  from lm.infer import harness_tasks

  if include:
    local = harness_tasks.task_manager(list(include), include_defaults=False)
    if all(name in local.all_tasks for name in names):
      return local
  return harness_tasks.task_manager(list(include) or None)


def columns(harness_results: dict[str, Any]) -> dict[str, float]:
  """The row's task columns from lm-eval's results: `task_<task>_<metric>` per metric (filter
  'none'; another filter is added: `_<filter>`), its standard error where lm-eval gives one
  (`..._<metric>_stderr`), and `task_<task>_chance` where the task's metadata gives it."""
  out = {}
  for task, metrics in harness_results["results"].items():
    for key, value in metrics.items():
      metric, _, kept_by = key.partition(",")
      if kept_by and isinstance(value, (int, float)):
        suffix = "" if kept_by == "none" else f"_{kept_by}"
        out[f"{results.TASK_PREFIX}{task}_{metric}{suffix}"] = float(value)
    metadata = harness_results.get("configs", {}).get(task, {}).get("metadata") or {}
    if isinstance(metadata.get("chance"), (int, float)):
      out[f"{results.TASK_PREFIX}{task}_chance"] = float(metadata["chance"])
  return out


def _settings(config) -> dict[str, Any]:
  """What a run's scores depend on besides the run: kept in its harness JSON's `source`."""
  return {
    "tasks": list(config.scaling.eval_tasks),
    "limit": config.scaling.eval_limit,
    "num_fewshot": 0,
  }


def score_run(config, workdir: str, run_dir: str) -> dict[str, float]:
  """Scores the run in `run_dir` (its latest checkpoint) on `scaling.eval_tasks` in this
  process, writes `<run_dir>/harness_step<N>.json`; returns its task columns."""
  from lm.infer import harness, harness_tasks

  run = loading.load_run(run_dir)
  assert run.config is not None  # a training run's
  model = harness.HarnessLM(run, name=run_dir, batch_size=run.config.data.batch_size)
  names = tuple(config.scaling.eval_tasks)
  scored = harness_tasks.evaluate(
    model,
    names,
    manager=_manager(names, _include_paths(config, workdir)),
    num_fewshot=0,
    limit=config.scaling.eval_limit or None,
  )
  scored["source"] = {"workdir": run_dir, "hf_dir": None, "step": run.step, **_settings(config)}
  path = paths.run_path(run_dir) / f"harness_step{run.step}.json"
  paths.write_atomically(path, harness_tasks.to_json(scored))
  return columns(scored)


def saved_columns(config, run_dir: str, step: int) -> dict[str, float]:
  """The task columns of `<run_dir>/harness_step<step>.json` where a sweep with these settings
  wrote it (a worker that trained the run scored it), else {}."""
  path = os.path.join(run_dir, f"harness_step{step}.json")
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    saved = json.load(f)
  source = saved.get("source", {})
  settings = _settings(config)  # `experiments.evaluate --tasks` writes the same keys
  if {k: source.get(k) for k in settings} != settings:
    return {}
  return columns(saved)


def lacks_scores(config, row: dict[str, Any]) -> bool:
  """Whether `row` lacks the columns of a task of `scaling.eval_tasks`."""
  return any(
    not any(k.startswith(f"{results.TASK_PREFIX}{task}_") for k in row)
    for task in config.scaling.eval_tasks
  )


def fill_missing(config, workdir: str) -> None:
  """Scores, in this process, each run of results.jsonl whose row lacks a task's columns, and
  writes the table again after each; a row whose run is not here is named and left as it is."""
  if not config.scaling.eval_tasks:
    return
  rows = results.read_results(workdir)
  for row in [r for r in rows if lacks_scores(config, r)]:
    run_dir = os.path.join(workdir, row["workdir"])
    if not os.path.isdir(os.path.join(run_dir, "checkpoints")):
      log.warning("%s: no checkpoints in %s; its tasks are not scored", row["name"], run_dir)
      continue
    found = saved_columns(config, run_dir, int(row["steps"]))
    log.info("%s: %s", row["name"], "scores found" if found else "scoring tasks")
    row.update(found or score_run(config, workdir, run_dir))
    results.rewrite(workdir, rows)
