"""The entry points end an expected failure in one `error:` line, and a stop with its own
exit status."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, config_flags
from lm.training import exit_status
from tests.runtime.test_paths import tmpfs

_TRAIN = [sys.executable, "-m", "experiments.train", "--config=experiments/configs/base.py"]


def _cli(args, **kw):
  env = dict(os.environ, PYTHONPATH=REPO)
  env.pop("XLA_FLAGS")
  return subprocess.run(
    args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False, **kw
  )


def _one_error_line(out: subprocess.CompletedProcess, expected: str) -> None:
  assert out.returncode == 1, out.stderr[-3000:]
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  assert out.stderr.strip().splitlines()[-1] == expected, out.stderr[-3000:]


def test_a_misspelt_config_field_is_one_line(tmp_path):
  out = _cli([*_TRAIN, f"--workdir={tmp_path}", "--config.model.d_modle=64"])
  _one_error_line(
    out,
    "error: --config.model.d_modle: the config has no field 'd_modle'; did you mean \"d_model\"?",
  )


def test_sampling_a_workdir_without_a_run_is_one_line(tmp_path):
  out = _cli([sys.executable, "-m", "experiments.sample", f"--workdir={tmp_path}"])
  _one_error_line(out, f"error: {tmp_path} holds no training run (no config.json and model.json)")


def test_tasks_without_lm_eval_say_what_to_install(tmp_path):
  hide_lm_eval = (
    "import sys; sys.modules['lm_eval'] = None; sys.argv[0] = 'evaluate';"
    "from experiments import evaluate; evaluate.run()"
  )
  out = _cli([sys.executable, "-c", hide_lm_eval, f"--workdir={tmp_path}", "--tasks=hellaswag"])
  _one_error_line(
    out,
    "error: --tasks: the task harness needs lm-eval, the optional eval extra: "
    "pip install -r requirements-eval.lock (or make .venv/.installed-eval)",
  )


@pytest.mark.parametrize(
  "size, fields",
  [
    # The checkpoints fill the disk.
    ("1m", {"train.steps": 200, "train.checkpoint_every": 5, "train.keep_checkpoints": -1}),
    # The metrics fill it: TensorBoard's writer thread died, the loop waited on its queue until
    # the watchdog ended the run (status 124).
    ("36k", {"train.steps": 100, "train.eval_every": 1000, "train.checkpoint_every": 1000}),
    # The run files fill it: model.json and status.json were left empty.
    ("8k", {}),
  ],
)
def test_a_full_disk_is_one_line_and_leaves_run_files_whole(tiny_config, tmp_path, size, fields):
  disk = tmp_path / "disk"
  tiny_config.update_from_flattened_dict({**fields, "train.watchdog_s": 30})
  with tmpfs(disk, size):
    out = _cli([*_TRAIN, f"--workdir={disk}/run", *config_flags(tiny_config)])
    left = {p.name: p.read_text() for p in (disk / "run").glob("*.json")}
  _one_error_line(out, f"error: no space left on {disk}/run")
  for name, text in left.items():
    assert json.loads(text), name  # whole, or absent
  assert {"config.json", "char_vocab.json"} <= set(left)


def test_ctrl_c_saves_and_exits_as_preempted(tiny_config, tmp_path):
  signum = signal.SIGINT  # SIGTERM takes the same path (tests/test_multiprocess.py)
  tiny_config.train.steps = 100_000
  tiny_config.train.checkpoint_every = 100_000
  env = dict(os.environ, PYTHONPATH=REPO)
  env.pop("XLA_FLAGS")
  proc = subprocess.Popen(
    [*_TRAIN, f"--workdir={tmp_path}", *config_flags(tiny_config)],
    cwd=REPO,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  assert proc.stderr is not None
  try:
    deadline = time.monotonic() + 240
    metrics = tmp_path / "metrics.jsonl"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
      assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
      time.sleep(0.2)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
  finally:
    proc.kill()
  assert proc.returncode == exit_status.PREEMPTED, err[-3000:]
  last = err.strip().splitlines()[-1]
  assert last.startswith("preempted at step ") and last.endswith(
    f"({signal.Signals(signum).name}): resume with the same command"
  ), last
  step = int(last.split()[3])
  assert [int(p.name) for p in (tmp_path / "checkpoints").iterdir()] == [step]


def test_overrides_without_a_config_file_are_one_line():
  from lm import cli

  with pytest.raises(
    SystemExit,
    match=r"^error: --config.model.num_layers overrides a field of "
    r"a config file, but no --config=FILE was given",
  ):
    cli.parse_flags(["train", "--workdir=/tmp/x", "--config.model.num_layers=2"])
