"""Listing runs and plotting their curves from the files a run writes (config, model, metrics,
status), and the `experiments.runs` commands."""

import dataclasses
import json
import os
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from lm.model import config as model_config
from lm.model import counts
from lm.runs import curves, listing, metrics, run_files
from tests.conftest import run_module


def _fake_run(workdir, config, losses, evals=(), status=None, **status_fields):
  """A run's files as training writes them: config.json, model.json, metrics.jsonl through
  MetricWriter (tokens/s on the last train row), status.json through run.write_status."""
  workdir.mkdir(parents=True)
  (workdir / "config.json").write_text(config.to_json_best_effort())
  model_cfg = model_config.architecture(config.model, 65)
  (workdir / "model.json").write_text(json.dumps(dataclasses.asdict(model_cfg)))
  (workdir / "checkpoints" / "4").mkdir(parents=True)  # not searched for runs
  writer = metrics.MetricWriter(str(workdir))
  for i, loss in enumerate(losses, 1):
    writer.write(
      i, {"loss": loss, "lr": 1e-3, **({"tokens_per_s": 1000.0 * i} if i == len(losses) else {})}
    )
    if i in dict(evals):
      writer.write(i, {"eval_loss": dict(evals)[i]})
  writer.close()
  if status is not None:
    run_files.write_status(str(workdir), status, **status_fields)
  return str(workdir)


@pytest.fixture
def runs_dir(tmp_path, tiny_config):
  """Runs in every state: two of a sweep in a subfolder, the others at the top."""
  root = tmp_path / "runs"
  _fake_run(
    root / "sweep" / "done",
    tiny_config,
    [4.0, 3.0, 2.5, 2.0, 1.9, 1.8, 1.7, 1.6],
    evals=[(4, 2.2), (8, 1.75)],
    status=run_files.FINISHED,
    step=8,
  )
  _fake_run(
    root / "sweep" / "stopped",
    tiny_config,
    [4.1, 3.2, 2.6],
    status=run_files.PREEMPTED,
    step=3,
    detail="SIGTERM",
  )
  _fake_run(
    root / "nan",
    tiny_config,
    [4.0, 3.9],
    status=run_files.FAILED,
    detail="NonFiniteLossError: loss nan / grad norm nan at step 3; last good "
    "checkpoint: none in /x/checkpoints",
  )
  _fake_run(
    root / "hung",
    tiny_config,
    [4.0],
    status=run_files.STALLED,
    detail="watchdog: no progress for 601s while evaluating at step 4",
  )
  _fake_run(root / "live", tiny_config, [4.0, 3.5], status=run_files.RUNNING, step=0)
  gone = subprocess.run(
    [sys.executable, "-c", "import os; print(os.getpid())"],
    capture_output=True,
    text=True,
    check=True,
  )
  _fake_run(root / "gone", tiny_config, [4.0], status=run_files.RUNNING)
  status = json.loads((root / "gone" / "status.json").read_text())
  (root / "gone" / "status.json").write_text(json.dumps({**status, "pid": int(gone.stdout)}))
  _fake_run(root / "elsewhere", tiny_config, [4.0], status=run_files.RUNNING)
  status = json.loads((root / "elsewhere" / "status.json").read_text())
  (root / "elsewhere" / "status.json").write_text(json.dumps({**status, "host": "tpu-w0"}))
  _fake_run(root / "old", tiny_config, [4.0, 3.0])  # from before status.json
  return root


def test_runs_are_found_and_summarised(runs_dir):
  named = listing.named_runs(str(runs_dir))
  names = [name for _, name in named]
  top = str(runs_dir)
  assert names == [
    f"{top}/{n}"
    for n in ("elsewhere", "gone", "hung", "live", "nan", "old", "sweep/done", "sweep/stopped")
  ]
  rows = {os.path.relpath(name, top): listing.summarise(w, name) for w, name in named}
  done = rows["sweep/done"]
  assert (
    done.step,
    done.steps,
    done.train_loss,
    done.eval_loss,
    done.tokens_per_s,
    done.status,
  ) == (8, 8, 1.6, 1.75, 8000.0, run_files.FINISHED)
  assert (rows["sweep/stopped"].status, rows["sweep/stopped"].detail) == (
    run_files.PREEMPTED,
    "SIGTERM",
  )
  assert rows["sweep/stopped"].step == 3 and rows["sweep/stopped"].eval_loss is None
  assert rows["nan"].status == run_files.FAILED and rows["nan"].detail.startswith("NonFiniteLoss")
  assert rows["hung"].status == run_files.STALLED
  assert rows["live"].status == run_files.RUNNING  # this process
  assert rows["gone"].status == listing.KILLED
  assert (rows["elsewhere"].status, rows["elsewhere"].detail) == (
    listing.MAYBE_RUNNING,
    "on tpu-w0",
  )
  assert rows["old"].status == listing.UNKNOWN
  # A run given itself is named as given.
  assert listing.named_runs(f"{top}/sweep/done/") == [(f"{top}/sweep/done", f"{top}/sweep/done")]


def test_the_table_has_a_line_per_run(runs_dir):
  top = str(runs_dir)
  summaries = [listing.summarise(w, os.path.relpath(w, top)) for w, _ in listing.named_runs(top)]
  now = max(s.updated or 0.0 for s in summaries) + 120
  lines = listing.format_table(summaries, now=now).splitlines()
  assert lines[0].split() == [
    "run",
    "step",
    "train",
    "loss",
    "eval",
    "loss",
    "tokens/s",
    "status",
    "updated",
    "detail",
  ]
  done = next(line for line in lines if line.startswith("sweep/done"))
  assert done.split() == ["sweep/done", "8/8", "1.6000", "1.7500", "8,000", "finished", "2m", "ago"]
  nan = next(line for line in lines if line.startswith("nan "))
  assert nan.split()[1:7] == ["2/8", "3.9000", "-", "2,000", "failed", "2m"]  # no eval yet
  assert nan.endswith(" NonFiniteLossError: loss nan / grad norm nan at step 3; last good chec")


@pytest.mark.parametrize("x", ["step", "tokens", "flops"])
def test_curves_are_read_against_step_tokens_or_flops(runs_dir, tiny_config, x):
  workdir = str(runs_dir / "sweep" / "done")
  curve = curves.read_curve(workdir, "done", x)
  tokens = tiny_config.data.batch_size * tiny_config.data.seq_len
  per_step = {
    "step": 1,
    "tokens": tokens,
    "flops": tokens
    * counts.training_flops_per_token(
      run_files.read_model_config(workdir), tiny_config.data.seq_len
    ),
  }[x]
  np.testing.assert_array_equal(curve.train_x, np.arange(1, 9) * per_step)
  np.testing.assert_array_equal(curve.train_loss, [4.0, 3.0, 2.5, 2.0, 1.9, 1.8, 1.7, 1.6])
  np.testing.assert_array_equal(curve.eval_x, np.array([4, 8]) * per_step)
  np.testing.assert_array_equal(curve.eval_loss, [2.2, 1.75])


def _cli(*argv):
  return run_module("experiments.runs", *argv)


def test_list_and_plot_commands(runs_dir, tmp_path):
  out = _cli("list", str(runs_dir))
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  assert len(lines) == 1 + 8 and lines[0].startswith("run ")
  assert any(
    line.startswith(f"{runs_dir}/sweep/stopped ") and " preempted " in line for line in lines
  )

  png = tmp_path / "curves.png"
  out = _cli(
    "plot", str(runs_dir / "sweep"), str(runs_dir / "nan"), "--x=flops", f"--out={png}", "--log"
  )
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == f"wrote {png}"
  image = matplotlib.image.imread(png)
  assert image.shape[:2] == (600, 960) and image.std() > 0  # 8 x 5 inches at 120 dpi

  missing = _cli("list", str(tmp_path / "nothing"))
  assert missing.returncode == 1
  assert missing.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nothing'} is not a folder"


@pytest.fixture
def broken_runs(runs_dir, tiny_config):
  """The runs of `runs_dir`, and three under bad/ whose files hold what no run writes."""
  bad = runs_dir / "bad"
  _fake_run(bad / "config", tiny_config, [4.0])
  (bad / "config" / "config.json").write_text("{}")
  _fake_run(bad / "metrics", tiny_config, [4.0, 3.0])
  with open(bad / "metrics" / "metrics.jsonl", "a") as f:
    f.write(json.dumps({"step": "x", "loss": 2.0}) + "\n")
  _fake_run(bad / "status", tiny_config, [4.0], status=run_files.RUNNING)
  status = json.loads((bad / "status" / "status.json").read_text())
  (bad / "status" / "status.json").write_text(json.dumps({**status, "pid": "abc"}))
  return runs_dir


def test_a_run_with_malformed_files_is_unreadable_and_the_others_are_listed(broken_runs):
  top = str(broken_runs)
  rows = {
    os.path.relpath(name, top): listing.summarise(w, name) for w, name in listing.named_runs(top)
  }
  assert {
    name: (row.status, row.detail) for name, row in rows.items() if name.startswith("bad")
  } == {
    "bad/config": (listing.UNREADABLE, "config.json's train.steps is missing"),
    "bad/metrics": (listing.UNREADABLE, "metrics.jsonl row 3's step is 'x'"),
    "bad/status": (listing.UNREADABLE, "status.json's pid is 'abc'"),
  }
  assert (rows["sweep/done"].status, rows["sweep/done"].step) == (run_files.FINISHED, 8)
  line = next(
    line for line in listing.format_table(list(rows.values())).splitlines() if "bad/metrics" in line
  )
  assert line.split()[1:6] == ["-", "-", "-", "-", "unreadable"]
  assert line.endswith(" metrics.jsonl row 3's step is 'x'")


def test_list_and_plot_leave_out_what_they_cannot_read(broken_runs, tmp_path):
  out = _cli("list", str(broken_runs))
  assert out.returncode == 0, out.stderr
  assert len(out.stdout.splitlines()) == 1 + 8 + 3
  assert sum(" unreadable " in line for line in out.stdout.splitlines()) == 3

  png = tmp_path / "curves.png"
  out = _cli("plot", str(broken_runs), "--x=tokens", f"--out={png}")
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == f"wrote {png}"
  assert [line for line in out.stderr.splitlines() if line.startswith("warning")] == [
    f"warning: {broken_runs}/bad/config is left out, unreadable: config.json's data.seq_len is "
    "missing",
    f"warning: {broken_runs}/bad/metrics is left out, unreadable: metrics.jsonl row 3's step "
    "is 'x'",
  ]


def test_coinciding_curves_of_a_stopped_and_a_killed_run_both_show(runs_dir, tiny_config):
  losses = [4.0 - 0.1 * i for i in range(16)]
  stopped = _fake_run(runs_dir / "same_stopped", tiny_config, losses, status=run_files.PREEMPTED)
  killed = _fake_run(runs_dir / "same_killed", tiny_config, losses, status=run_files.RUNNING)
  status = json.loads((runs_dir / "same_killed" / "status.json").read_text())
  gone = subprocess.run(
    [sys.executable, "-c", "import os; print(os.getpid())"],
    capture_output=True,
    text=True,
    check=True,
  )
  (runs_dir / "same_killed" / "status.json").write_text(
    json.dumps({**status, "pid": int(gone.stdout)})
  )
  loaded = [curves.read_curve(stopped, "run_a"), curves.read_curve(killed, "run_b")]
  assert [c.status for c in loaded] == [run_files.PREEMPTED, listing.KILLED]
  fig = curves.draw(loaded, "step")
  ax = fig.axes[0]
  first, second = ax.get_lines()
  np.testing.assert_array_equal(first.get_ydata(), second.get_ydata())  # the same curve
  assert first.get_linestyle() != second.get_linestyle()
  assert first.get_marker() != second.get_marker()
  assert first.get_markevery() != second.get_markevery()  # markers at other steps
  legend = ax.get_legend()
  assert legend is not None
  assert [t.get_text() for t in legend.get_texts()] == [
    "run_a (preempted) train",
    "run_b (killed) train",
  ]
  ends = ax.texts  # each end labelled, the second a line below the first
  assert [t.get_text() for t in ends] == ["run_a (preempted)", "run_b (killed)"]
  assert ends[0].get_position()[1] > ends[1].get_position()[1]  # offsets, in points
