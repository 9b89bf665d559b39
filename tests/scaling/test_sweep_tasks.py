"""Task accuracy in a scaling sweep (`scaling.eval_tasks`): the next-line task made from the
corpus, a tiny sweep's task columns against `experiments.evaluate --tasks`, a re-run that scores
rows without them, fit_scaling's tasks.png and fit.json `tasks`, and the one-line error without
lm-eval."""

import io
import json
import os
import subprocess
import sys

import jax
import pytest

from conftest import REPO, run_module
from lm.infer import next_line_task
from lm.runtime import sharding
from lm.scaling import progress, results, sweep, sweep_tasks, workers
from lm.training import loop
from tests.scaling.test_laws import synthetic
from tests.scaling.test_sweep import _sweep_config as grid_config

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
TEXT = "\n".join(
  f"the {a} and the {b} line"
  for a in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")
  for b in ("eta", "theta", "iota", "kappa", "lambda", "mu")
)


def test_next_line_documents_hold_the_true_next_line_among_four_distinct_lines():
  docs = next_line_task.make_documents(TEXT, 10, seed=3)
  lines = TEXT.split("\n")
  assert len(docs) == 10 and docs == next_line_task.make_documents(TEXT, 10, seed=3)
  assert docs != next_line_task.make_documents(TEXT, 10, seed=4)
  for doc in docs:
    assert len(set(doc["choices"])) == next_line_task.NUM_CHOICES
    assert doc["choices"][doc["answer"]] == lines[lines.index(doc["line"]) + 1]
  assert {doc["answer"] for doc in docs} != {docs[0]["answer"]}  # the answer's place varies
  with pytest.raises(ValueError, match="too few for a next-line task"):
    next_line_task.make_documents("one line only\n", 5)
  short = next_line_task.make_documents(TEXT, 30, max_chars=30)
  assert all(len(c) <= 30 for doc in short for c in [doc["line"], *doc["choices"]])


def _sweep_config(c, tasks_dir):
  """test_sweep's tiny grid at 2 sizes per budget, scored on two local next-line tasks."""
  c = grid_config(c)
  s = c.scaling
  s.sizes_per_budget = 2
  s.eval_tasks = (sweep_tasks.NEXT_LINE, "tiny_next_line")
  s.eval_include_path = str(tasks_dir)
  s.eval_limit = 6
  c.model.max_seq_len = 64  # a line and its next fit: 32 characters each
  return c


@pytest.mark.slow
def test_a_sweep_scores_each_run_on_its_tasks_and_fit_scaling_plots_them(
  tiny_config, tmp_path, monkeypatch
):
  pytest.importorskip("lm_eval")
  for name, value in OFFLINE.items():
    monkeypatch.setenv(name, value)
  tasks_dir = tmp_path / "my_tasks"
  next_line_task.write_task(
    str(tasks_dir), "tiny_next_line", next_line_task.make_documents(TEXT, 5)
  )
  config = _sweep_config(tiny_config, tasks_dir)
  workdir = str(tmp_path / "sweep")
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  rows = sweep.run_sweep(config, workdir, lambda c, d: loop.train_and_evaluate(c, d, mesh))
  assert len(rows) == 4
  columns = [f"task_{sweep_tasks.NEXT_LINE}_acc", "task_tiny_next_line_acc_norm"]
  for row in rows:
    assert all(0 <= row[c] <= 1 for c in columns)
    assert row[f"task_{sweep_tasks.NEXT_LINE}_chance"] == 0.25
    assert 0 <= row[f"task_{sweep_tasks.NEXT_LINE}_acc_stderr"] < 0.5
  with open(os.path.join(workdir, results.RESULTS_CSV)) as f:
    assert set(columns) <= set(f.readline().strip().split(","))

  # What experiments.evaluate --tasks gives for a run of the table.
  run_dir = os.path.join(workdir, rows[0]["workdir"])
  own_tasks = os.path.join(workdir, sweep_tasks.TASKS_DIR)
  out = run_module(
    "experiments.evaluate",
    f"--workdir={run_dir}",
    f"--tasks={sweep_tasks.NEXT_LINE}",
    f"--include_path={own_tasks}",
    "--limit=6",
    env=OFFLINE,
  )
  assert out.returncode == 0, out.stderr[-2000:]
  with open(os.path.join(run_dir, f"harness_step{rows[0]['steps']}.json")) as f:
    evaluated = json.load(f)["results"][sweep_tasks.NEXT_LINE]
  assert evaluated["acc,none"] == rows[0][columns[0]]

  # A re-run gives the rows that lack the columns their scores, training nothing again: from
  # the harness's JSON beside a run, or scoring the run where it is gone.
  stripped = [{k: v for k, v in r.items() if not k.startswith("task_")} for r in rows]
  results.rewrite(workdir, stripped)
  os.remove(os.path.join(workdir, rows[1]["workdir"], f"harness_step{rows[1]['steps']}.json"))

  def must_not_train(cfg, run_dir):
    raise AssertionError(f"finished run trained again: {run_dir}")

  again = sweep.run_sweep(config, workdir, runner=must_not_train)
  assert [{c: r[c] for c in columns} for r in again] == [{c: r[c] for c in columns} for r in rows]

  out = run_module(
    "experiments.fit_scaling",
    f"--results={workdir}/results.csv",
    f"--plots_dir={tmp_path}/plots",
    "--bootstrap=5",
  )
  assert out.returncode == 0, out.stderr[-2000:]
  assert f"wrote {tmp_path}/plots/tasks.png" in out.stdout
  assert f"task_{sweep_tasks.NEXT_LINE}_acc: 4 runs" in out.stdout
  with open(os.path.join(workdir, "fit.json")) as f:
    recorded = {t["column"]: t for t in json.load(f)["tasks"]}
  assert set(columns) <= set(recorded)
  task = recorded[columns[0]]
  assert task["chance"] == 0.25 and len(task["points"]) == 4
  assert sum(p["isoflop_minimum"] for p in task["points"]) == 2  # one per budget
  assert [p["score"] for p in task["points"]] == [r[columns[0]] for r in rows]
  assert [p["stderr"] for p in task["points"]] == [r[f"{columns[0]}_stderr"] for r in rows]


@pytest.mark.slow
def test_a_reusable_worker_scores_the_run_it_trained_and_its_row_gets_the_scores(
  tiny_config, tmp_path, monkeypatch
):
  pytest.importorskip("lm_eval")
  for name, value in OFFLINE.items():
    monkeypatch.setenv(name, value)
  config = _sweep_config(tiny_config, tmp_path)
  config.scaling.eval_tasks = (sweep_tasks.NEXT_LINE,)
  config.scaling.eval_include_path = ""
  config.scaling.budgets = (4e7,)
  workdir = str(tmp_path / "sweep")
  sweep_tasks.start(config, workdir)
  plan = sweep.sweep_runs(config, sweep.vocab_size(config), workdir)[1][0]
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  replies = io.StringIO()
  status = workers.serve(
    config,
    workdir,
    io.StringIO(plan.name + "\n"),
    replies,
    lambda c, d: loop.train_and_evaluate(c, d, mesh),
  )
  assert status == 0 and json.loads(replies.getvalue())["status"] == "finished"
  # The sweep's process records the run's row (as when the worker replies), with its scores.
  vocab = sweep.vocab_size(config)
  prog = progress.Progress([plan], [], config, 1)
  assert workers._record(config, workdir, plan, ("finished", "", 1.0), vocab, prog)
  (row,) = results.read_results(workdir)
  assert 0 <= row[f"task_{sweep_tasks.NEXT_LINE}_acc"] <= 1
  run_dir = os.path.join(workdir, plan.name)
  assert sweep_tasks.saved_columns(config, run_dir, plan.steps) == {
    k: v for k, v in row.items() if k.startswith("task_")
  }
  config.scaling.eval_limit = 5  # other settings: those scores are not the sweep's
  assert sweep_tasks.saved_columns(config, run_dir, plan.steps) == {}


@pytest.mark.slow
def test_a_task_no_one_knows_stops_the_sweep_before_it_trains(tiny_config, tmp_path):
  pytest.importorskip("lm_eval")
  config = _sweep_config(tiny_config, tmp_path)
  config.scaling.eval_tasks = ("corpus_next_lin",)
  config.scaling.eval_include_path = ""

  def must_not_train(cfg, run_dir):
    raise AssertionError(f"trained {run_dir}")

  with pytest.raises(ValueError) as error:
    sweep.run_sweep(config, str(tmp_path / "sweep"), runner=must_not_train)
  assert str(error.value).startswith(
    "config.scaling.eval_tasks: no task 'corpus_next_lin' in lm-eval's tasks or "
    "config.scaling.eval_include_path; close names: corpus_next_line"
  )
  assert not (tmp_path / "sweep").exists()  # nothing left behind


def test_a_table_without_task_columns_fits_and_plots_as_before(tmp_path):
  p = synthetic(sizes=4)
  (tmp_path / "table.csv").write_text(
    "N,D,loss\n" + "".join(f"{n},{d},{loss}\n" for n, d, loss in zip(p.n, p.d, p.loss))
  )
  out = run_module(
    "experiments.fit_scaling",
    f"--results={tmp_path / 'table.csv'}",
    "--params_col=N",
    "--tokens_col=D",
    "--flops_col=",
    "--loss_col=loss",
    "--budget_col=",
    "--bootstrap=4",
    f"--plots_dir={tmp_path}/plots",
  )
  assert out.returncode == 0, out.stderr[-2000:]
  printed = out.stdout.replace(str(tmp_path), "TMP")
  assert "task" not in printed and "wrote" in printed
  assert os.listdir(tmp_path / "plots") and not os.path.exists(tmp_path / "plots" / "tasks.png")
  with open(tmp_path / "fit.json") as f:
    assert "tasks" not in json.load(f)


def test_a_sweep_with_tasks_without_lm_eval_says_what_to_install(tmp_path):
  hide_lm_eval = (
    "import sys; sys.modules['lm_eval'] = None; sys.argv[0] = 'sweep';"
    "from experiments import sweep; sweep.run()"
  )
  out = subprocess.run(
    [
      sys.executable,
      "-c",
      hide_lm_eval,
      f"--config={REPO}/experiments/configs/scaling_cpu.py",
      f"--workdir={tmp_path}/sweep",
      f"--config.scaling.eval_tasks=('{sweep_tasks.NEXT_LINE}',)",
    ],
    cwd=REPO,
    env={**os.environ, "PYTHONPATH": REPO},
    capture_output=True,
    text=True,
    check=False,
  )
  assert out.returncode != 0
  assert out.stderr.strip().splitlines()[-1] == (
    "error: config.scaling.eval_tasks=('corpus_next_line',): the task harness needs lm-eval, "
    "the optional eval extra: pip install -r requirements-eval.lock (or make "
    ".venv/.installed-eval)"
  )
  assert not os.path.exists(tmp_path / "sweep" / "C8e10_L4_d4")  # nothing trained
