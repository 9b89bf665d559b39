"""A run's config.json or model.json cut short (a full disk, a copy that stopped): ConfigError
naming the file, and one `error:` line from `experiments.train` resuming the run."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, config_flags
from lm.model.config import TransformerConfig
from lm.runs import run_files
from lm.training.config_checks import ConfigError

MODEL = TransformerConfig(
  vocab_size=16, num_layers=1, num_heads=2, d_model=8, mlp_dim=16, max_seq_len=16
)


def _run(workdir, config_text: str, model_text: str) -> None:
  """A run's files in `workdir`, as given, and a checkpoint folder."""
  (workdir / "checkpoints" / "4").mkdir(parents=True)
  (workdir / "checkpoints" / "4" / "state").write_text("")
  (workdir / "config.json").write_text(config_text)
  (workdir / "model.json").write_text(model_text)


def test_train_resuming_a_run_with_a_truncated_model_json_is_one_line(tiny_config, tmp_path):
  workdir = tmp_path / "run"
  _run(workdir, tiny_config.to_json(), json.dumps(dataclasses.asdict(MODEL))[:40])
  env = dict(os.environ, PYTHONPATH=REPO)
  env.pop("XLA_FLAGS", None)
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.train",
      "--config=experiments/configs/base.py",
      f"--workdir={workdir}",
      *config_flags(tiny_config),
    ],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert out.returncode == 1, out.stderr[-3000:]
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  assert (
    out.stderr.strip()
    .splitlines()[-1]
    .startswith(f"error: {workdir / 'model.json'} is not valid JSON (Unterminated string")
  ), out.stderr[-3000:]


@pytest.mark.parametrize("allow_config_change", [False, True])
def test_a_truncated_config_json_names_the_file(tiny_config, tmp_path, allow_config_change):
  _run(tmp_path, tiny_config.to_json()[:100], json.dumps(dataclasses.asdict(MODEL)))
  message = f"{tmp_path / 'config.json'} is not valid JSON .*: a truncated or damaged run file"
  with pytest.raises(ConfigError, match=message):
    run_files.check_workdir(str(tmp_path), MODEL, tiny_config, allow_config_change)
  with pytest.raises(ConfigError, match=message):
    run_files.read_config(str(tmp_path))


def test_a_truncated_model_json_names_the_file(tmp_path):
  _run(tmp_path, "{}", json.dumps(dataclasses.asdict(MODEL))[:30])
  with pytest.raises(ConfigError, match=f"{tmp_path / 'model.json'} is not valid JSON"):
    run_files.read_model_config(str(tmp_path))
