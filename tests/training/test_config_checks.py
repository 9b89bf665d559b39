import os

import pytest

from conftest import REPO
from lm.runs import wandb_mirror
from lm.training import config_checks


@pytest.mark.parametrize(
  "field, value, message",
  [
    (
      "model.num_heads",
      5,
      r"config.model.d_model=32 must be divisible by config.model.num_heads=5",
    ),
    ("mesh.data", 3, r"config.mesh: data\*fsdp\*tensor = 6 .* must equal the 8 devices"),
    ("data.batch_size", 6, r"config.data.batch_size=6 must be divisible by mesh data\*fsdp=4"),
    ("data.seq_len", 32, r"config.data.seq_len=32 exceeds config.model.max_seq_len=16"),
    (
      "optim.schedule",
      "step",
      r"config.optim.schedule='step'; valid: constant, linear, cosine, wsd, wsd_sqrt",
    ),
    ("data.dataset", "no_such_set", r"config.data.dataset='no_such_set' is unknown"),
    ("data.path", "/nonexistent.txt", r"config.data.path='/nonexistent.txt' does not exist"),
    (
      "data.tokenizer",
      "wordpiece",
      r"config.data.tokenizer='wordpiece'; valid: char, sentencepiece, bpe",
    ),
    ("data.format", "csv", r"config.data.format='csv'; valid: auto, text, jsonl, parquet"),
    ("model.position", "alibi", r"config.model.position='alibi'"),
    ("optim.learning_rate", -1e-3, r"config.optim.learning_rate=-0.001 must be positive and "),
    ("optim.learning_rate", float("inf"), r"config.optim.learning_rate=inf must be positive"),
    ("optim.learning_rate", float("nan"), r"config.optim.learning_rate=nan must be positive"),
    ("optim.learning_rate", 1e39, r"config.optim.learning_rate=1e\+39 must be positive and fin"),
    ("model.dropout", 1.0, r"config.model.dropout=1.0 must lie in \[0, 1\)"),
    ("model.dropout", -0.1, r"config.model.dropout=-0.1 must lie in \[0, 1\)"),
    ("data.validation_fraction", 0.0, r"config.data.validation_fraction=0.0 must lie in \(0, 1\)"),
    ("data.validation_fraction", 1.5, r"config.data.validation_fraction=1.5 must lie in"),
    ("train.checkpoint_every", 0, r"config.train.checkpoint_every=0 must be >= 1"),
    ("train.log_every", 0, r"config.train.log_every=0 must be >= 1"),
    ("train.eval_every", 0, r"config.train.eval_every=0 must be >= 1"),
    ("train.keep_checkpoints", 0, r"config.train.keep_checkpoints=0 would keep no checkpoint"),
    ("model.vocab_multiple", 0, r"config.model.vocab_multiple=0 must be >= 1"),
    ("data.batch_size", 0, r"config.data.batch_size=0 must be >= 1"),
    ("train.watchdog_s", -1, r"config.train.watchdog_s=-1 must be >= 0"),
    ("model.norm", "batchnorm", r"config.model.norm='batchnorm'; valid: layernorm, rmsnorm"),
    ("model.mlp", "relu", r"config.model.mlp='relu'; valid: gelu, swiglu"),
    ("model.num_kv_heads", 3, r"config.model.num_kv_heads=3 must divide config.model.num_heads=4"),
    (
      "model.num_kv_heads",
      1,
      r"config.model.num_kv_heads=1 must be divisible by "
      r"config.mesh.tensor=2",
    ),
    ("model.rope_theta", 0.0, r"config.model.rope_theta=0.0 must be > 0"),
    (
      "model.rope_scaling",
      "yarn",
      r"config.model.rope_scaling='yarn'; valid: none, linear, "
      r"llama3",
    ),
    (
      "model.rope_scaling",
      "linear",
      r"config.model.rope_scaling='linear' needs "
      r"config.model.position='rotary'",
    ),
    ("model.rope_scaling_factor", 0.5, r"config.model.rope_scaling_factor=0.5 must be >= 1"),
    (
      "model.rope_high_freq_factor",
      0.5,
      r"config.model: rope_low_freq_factor=1.0 and "
      r"rope_high_freq_factor=0.5 must satisfy 0 < low < high",
    ),
    ("model.rope_original_max_len", 0, r"config.model.rope_original_max_len=0 must be >= 1"),
    ("train.z_loss", -1e-4, r"config.train.z_loss=-0.0001 must be >= 0"),
    ("train.wandb_mode", "cloud", r"config.train.wandb_mode='cloud'; valid: online, offline"),
    ("model.parametrization", "ntk", r"config.model.parametrization='ntk'; valid: standard, mup"),
  ],
)
def test_bad_config_fails_naming_the_field(tiny_config, field, value, message):
  tiny_config.mesh.data = 4 if field != "mesh.data" else tiny_config.mesh.data
  tiny_config.mesh.tensor = 2
  section, name = field.split(".")
  tiny_config[section][name] = value
  with pytest.raises(config_checks.ConfigError, match=message):
    config_checks.check(tiny_config, num_devices=8)


def test_a_missing_relative_data_path_names_the_repositorys(tiny_config, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  tiny_config.data.path = "data/tiny_shakespeare.txt"
  bundled = os.path.join(REPO, "data", "tiny_shakespeare.txt")
  with pytest.raises(config_checks.ConfigError) as error:
    config_checks.check(tiny_config, num_devices=1)
  assert str(error.value) == (
    "config.data.path='data/tiny_shakespeare.txt' does not exist here; the repository's is "
    f"{bundled} (run from {REPO}, or set --config.data.path={bundled})"
  )


def test_document_masking_is_for_decoder_language_models(tiny_config):
  tiny_config.data.document_masking = True
  config_checks.check(tiny_config, num_devices=1)
  tiny_config.model.kind = "encoder"
  with pytest.raises(
    config_checks.ConfigError,
    match=r"config.data.document_masking=True "
    r"applies to decoder language models",
  ):
    config_checks.check(tiny_config, num_devices=1)


def test_wandb_without_the_package_fails_in_one_line(tiny_config, monkeypatch):
  monkeypatch.setattr(wandb_mirror, "installed", lambda: False)
  tiny_config.train.wandb_project = "lm"
  with pytest.raises(
    config_checks.ConfigError,
    match=r"^config.train.wandb_project='lm' needs "
    r"the wandb package, which is not installed: pip install wandb",
  ):
    config_checks.check(tiny_config, num_devices=1)
  tiny_config.train.wandb_project = ""  # off: wandb is never needed
  config_checks.check(tiny_config, num_devices=1)


@pytest.mark.parametrize(
  "field, value, message",
  [
    ("model.base_width", 0, r"config.model.parametrization='mup' needs config.model.base_width=0"),
    ("optim.name", "muon", r"config.optim.name='muon' with config.model.parametrization='mup'"),
    ("model.kind", "encoder", r"config.model.parametrization='mup' is implemented for decoder"),
    ("model.mup_output_multiplier", 0.0, r"config.model.mup_output_multiplier=0.0 must be > 0"),
  ],
)
def test_mup_needs_its_base_shape_a_decoder_and_an_adam_family_optimizer(
  tiny_config, field, value, message
):
  tiny_config.model.update(parametrization="mup", base_width=16, base_head_dim=8)
  config_checks.check(tiny_config, num_devices=1)
  section, name = field.split(".")
  tiny_config[section][name] = value
  with pytest.raises(config_checks.ConfigError, match=message):
    config_checks.check(tiny_config, num_devices=1)


def test_the_output_multiplier_is_mups_only(tiny_config):
  tiny_config.model.mup_output_multiplier = 8.0
  with pytest.raises(config_checks.ConfigError, match=r"mup_output_multiplier=8.0 is μP's"):
    config_checks.check(tiny_config, num_devices=1)


def test_valid_config_passes(tiny_config):
  tiny_config.mesh.data = -1
  tiny_config.mesh.tensor = 2
  config_checks.check(tiny_config, num_devices=8)


def test_command_line_reports_one_line(tiny_config, tmp_path):
  import subprocess
  import sys

  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.train",
      "--config=experiments/configs/shakespeare_char.py",
      f"--workdir={tmp_path}",
      "--config.model.num_heads=3",
    ],
    cwd=REPO,
    capture_output=True,
    check=False,
    text=True,
    timeout=120,
  )
  assert out.returncode != 0
  assert out.stderr.strip().splitlines()[-1] == (
    "error: config.model.d_model=128 must be divisible by config.model.num_heads=3"
  )
