"""The results table: the run identity its rows are kept under, a table from before some
columns, and the committed study's rows, which a sweep planned today finds finished."""

import json
import os

from conftest import REPO
from experiments.configs import scaling_cpu
from lm.runs import run_files
from lm.scaling import lr_search, noise, results, sweep

COMMITTED = os.path.join(REPO, "results", "scaling_cpu")
# The committed study's data.path (its machine's standard library; a run's identity holds it)
# and the padded vocabulary of that corpus.
STUDY_CORPUS, STUDY_VOCAB = "/root/.pyenv/versions/3.11.7/lib/python3.11", 512


def test_run_identity_ignores_the_execution_and_bookkeeping_only(tiny_config):
  base = results.config_hash(tiny_config)
  ignored = [("execution", name) for name in tiny_config.execution] + [
    tuple(n.split(".")) for n in run_files.FIELDS_OUTSIDE_IDENTITY if "." in n
  ]
  for section, name in ignored:
    changed = tiny_config.copy_and_resolve_references()
    value = changed[section][name]
    changed[section][name] = (
      not value
      if isinstance(value, bool)
      else value + 1
      if isinstance(value, int)
      else (*value, 1)
      if isinstance(value, tuple)
      else "bfloat16"
    )
    assert results.config_hash(changed) == base, (section, name)
  for section, name, value in [
    ("model", "d_model", 64),
    ("train", "eval_batches", 3),
    ("data", "encoding", "latin-1"),
    ("optim", "eps", 1e-6),
  ]:
    changed = tiny_config.copy_and_resolve_references()
    changed[section][name] = value
    assert results.config_hash(changed) != base, (section, name)


def test_a_field_added_after_the_committed_hashes_is_in_the_identity_off_its_neutral_value(
  tiny_config,
):
  without = tiny_config.copy_and_resolve_references()
  del without.model["mup_output_multiplier"]
  assert results.config_hash(without) == results.config_hash(tiny_config)
  tiny_config.model.mup_output_multiplier = 8.0
  assert results.config_hash(tiny_config) != results.config_hash(without)


def test_a_table_from_before_the_new_columns_gets_them(tmp_path):
  old = {
    k: 1
    for k in results.COLUMNS
    if k not in ("learning_rate", "method", "branch_of", "branch_step")
  }
  workdir = str(tmp_path)
  with open(os.path.join(workdir, results.RESULTS_JSONL), "w") as f:
    f.write(json.dumps(old) + "\n")
  with open(os.path.join(workdir, results.RESULTS_CSV), "w") as f:
    f.write(",".join(old) + "\n" + ",".join("1" for _ in old) + "\n")
  results.append_row(workdir, dict.fromkeys(results.COLUMNS, 2))
  with open(os.path.join(workdir, results.RESULTS_CSV)) as f:
    lines = f.read().splitlines()
  assert lines[0] == ",".join(results.COLUMNS)
  assert lines[1].count("1") == len(old) and lines[2] == ",".join("2" for _ in results.COLUMNS)


def test_the_committed_studys_rows_are_the_runs_its_config_plans():
  """experiments/configs/scaling_cpu.py planned today finds every run of the committed study
  finished (its trials, the runs they chose and the seed repeats, by name and config hash): a
  sweep in a copy of that folder trains nothing again."""
  config = scaling_cpu.get_config()
  config.data.path = STUDY_CORPUS
  points, runs, choices = sweep.sweep_runs(config, STUDY_VOCAB, COMMITTED)
  trial_rows = results.read_results(COMMITTED, lr_search.TRIALS_JSONL)
  trials = lr_search.trial_runs(config, points)
  assert set(results.finished(config, trials, trial_rows)) == {t.name for t in trials if t.adds_row}
  assert set(choices) == {lr_search.size_of(p) for p in points}
  rows = results.read_results(COMMITTED) + noise.read_repeats(COMMITTED)
  assert set(results.finished(config, runs, rows)) == {r.name for r in runs if r.adds_row}
