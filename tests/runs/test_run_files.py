import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import make_tiny_config, write_corpus
from lm.data.tokenizer import CharTokenizer
from lm.model import config as model_config
from lm.runs import compat, lineage, listing, loading, run_files
from lm.runtime import sharding
from lm.training import config_checks, loop
from tests.runtime.test_paths import small_disk


@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory):
  """A finished 2-step run with bfloat16 logits (an execution field): (workdir, config,
  params). Tests that change its files work on a copy."""
  root = tmp_path_factory.mktemp("two_step_run")
  config = make_tiny_config(root, write_corpus(root))
  config.train.steps = 2
  config.optim.warmup_steps = 1
  config.execution.logits_dtype = "bfloat16"
  workdir = root / "run"
  summary = loop.train_and_evaluate(config, str(workdir), _one_device(config))
  return workdir, config, sharding.host_copy(summary["state"].params)


def _one_device(config):
  return sharding.make_mesh(config.mesh, jax.devices()[:1])


def _logits_dtype(run: loading.TrainedRun):
  return jnp.dtype(nnx.merge(run.graphdef, run.params)(jnp.zeros((1, 4), jnp.int32)).dtype)


def test_a_run_loads_its_params_and_its_execution(two_step_run):
  workdir, _, params = two_step_run
  # The architecture in model.json, the execution in config.json; both come back.
  model_json = json.loads((workdir / "model.json").read_text())
  assert "logits_dtype" not in model_json and model_json["d_model"] == 32
  loaded = loading.load_run(str(workdir))
  assert loaded.step == 2 and loaded.model_cfg.d_model == 32
  jax.tree.map(np.testing.assert_array_equal, sharding.host_copy(loaded.params), params)
  assert _logits_dtype(loaded) == jnp.bfloat16


def test_a_restart_with_another_model_fails_naming_the_fields_before_writing(two_step_run):
  workdir, config, _ = two_step_run
  before = {p: (workdir / p).read_bytes() for p in ("config.json", "model.json")}
  changed = config.copy_and_resolve_references()
  changed.model.d_model = 64
  with pytest.raises(
    config_checks.ConfigError,
    match=r"holds a run of another model, whose checkpoints cannot be restored: "
    r"config.model.d_model=64 \(the run's: 32\)",
  ):
    loop.train_and_evaluate(changed, str(workdir), _one_device(config))
  assert before == {p: (workdir / p).read_bytes() for p in before}


def test_a_workdir_that_is_a_file_or_holds_no_run_fails_in_one_line(two_step_run):
  workdir, config, _ = two_step_run
  with pytest.raises(config_checks.ConfigError, match=r"--workdir=.*config.json is a file"):
    loop.train_and_evaluate(config, str(workdir / "config.json"), _one_device(config))
  with pytest.raises(FileNotFoundError, match=r"holds no training run"):
    loading.load_run(str(workdir / "empty"))


def test_runs_saved_before_later_fields_load_as_they_trained(two_step_run, tmp_path):
  workdir = tmp_path / "legacy"
  shutil.copytree(two_step_run[0], workdir)
  # Before the model config was split in two, dtypes and kernels were in model.json, and
  # config.json had no `execution`; before μP there was no parametrization; before these
  # fields, no optimizer choice or freezing, and no document masking.
  model_json = json.loads((workdir / "model.json").read_text())
  model_json.update(
    param_dtype="float32",
    compute_dtype="float32",
    attention_impl="xla",
    remat="none",
    scan_layers=False,
    logits_dtype="float16",
  )
  for field in ("parametrization", "base_width", "base_head_dim"):
    del model_json[field]
  (workdir / "model.json").write_text(json.dumps(model_json))
  config = json.loads((workdir / "config.json").read_text())
  del config["execution"]
  for section, field in (name.split(".") for name in compat.ADDED_FIELDS):
    del config[section][field]
  (workdir / "config.json").write_text(json.dumps(config))
  legacy = loading.load_run(str(workdir))
  assert legacy.step == 2 and legacy.model_cfg.parametrization == "standard"
  assert _logits_dtype(legacy) == jnp.float16
  assert legacy.config is not None
  assert (legacy.config.optim.name, legacy.config.optim.freeze_layers) == ("adamw", 0)
  assert not legacy.document_masking


def test_a_resume_that_changes_the_run_is_refused_unless_allowed(tiny_config, tmp_path, caplog):
  tiny_config.train.steps = 2
  tiny_config.optim.warmup_steps = 1
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  loop.train_and_evaluate(tiny_config, str(tmp_path), mesh)
  original = (tmp_path / "config.json").read_text()
  longer = tiny_config.copy_and_resolve_references()
  longer.train.steps = 3
  longer.optim.learning_rate = 2e-3
  with pytest.raises(
    config_checks.ConfigError,
    match=r"holds a run trained with other settings: "
    r"config.optim.learning_rate=0.002 \(the run's: 0.001\), "
    r"config.train.steps=3 \(the run's: 2\); resume with the run's values",
  ):
    loop.train_and_evaluate(longer, str(tmp_path), mesh)
  assert (tmp_path / "config.json").read_text() == original  # a refusal writes nothing
  # What only changes how a run reports, saves or runs may change; a finished run says so.
  caplog.set_level("INFO")
  quieter = tiny_config.copy_and_resolve_references()
  quieter.train.log_every = 2
  assert loop.train_and_evaluate(quieter, str(tmp_path), mesh)["step"] == 2
  assert "already finished at step 2 (config.train.steps=2): nothing to train" in caplog.text
  assert json.loads((tmp_path / "config.json").read_text())["train"]["log_every"] == 2
  assert "steps" not in lineage.read_history(str(tmp_path))[-1]["after"]


def test_an_allowed_change_becomes_the_runs_config(tiny_config, tmp_path, caplog):
  tiny_config.train.steps = 2
  tiny_config.optim.warmup_steps = 1
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  loop.train_and_evaluate(tiny_config, str(tmp_path), mesh)
  assert lineage.read_history(str(tmp_path)) == []
  longer = tiny_config.copy_and_resolve_references()
  longer.train.steps = 3
  caplog.set_level("INFO")
  summary = loop.train_and_evaluate(longer, str(tmp_path), mesh, allow_config_change=True)
  assert summary["step"] == 3
  assert "config changed at step 2: config.train.steps=3 (was 2)" in caplog.text
  assert json.loads((tmp_path / "config.json").read_text())["train"]["steps"] == 3
  (change,) = lineage.read_history(str(tmp_path))
  assert (change["step"], change["before"], change["after"]) == (
    2,
    {"train.steps": 2},
    {"train.steps": 3},
  )
  # The next resume compares with the accepted config: no flag needed, nothing recorded.
  assert loop.train_and_evaluate(longer, str(tmp_path), mesh)["step"] == 3
  assert len(lineage.read_history(str(tmp_path))) == 1
  (row,) = listing.format_table([listing.summarise(str(tmp_path), "run")]).splitlines()[1:]
  assert row.split()[:2] == ["run", "3/3"]
  # Going back to the first schedule is a change too, refused without the flag.
  with pytest.raises(config_checks.ConfigError, match=r"config.train.steps=2 \(the run's: 3\)"):
    loop.train_and_evaluate(tiny_config, str(tmp_path), mesh)


def test_a_run_from_before_the_history_trains_with_its_newest_config_step(two_step_run, tmp_path):
  """Such runs kept config.json as first trained and each changed config as
  config.step<N>.json (here made by the test); the newest is the config they train with."""
  source, config, _ = two_step_run
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  for step, steps in ((1, 5), (2, 3)):
    changed = config.copy_and_resolve_references()
    changed.train.steps = steps
    (workdir / f"config.step{step}.json").write_text(changed.to_json_best_effort())
  assert run_files.read_config(str(workdir)).train.steps == 3
  assert run_files.read_config_field(str(workdir), "train.steps", int) == 3
  longer = config.copy_and_resolve_references()
  longer.train.steps = 3
  assert loop.train_and_evaluate(longer, str(workdir), _one_device(config))["step"] == 3
  assert json.loads((workdir / "config.json").read_text())["train"]["steps"] == 3


def test_a_mup_run_trains_and_loads_as_mup(tiny_config, tmp_path):
  tiny_config.train.steps = 2
  tiny_config.optim.warmup_steps = 1
  tiny_config.model.update(parametrization="mup", base_width=16, base_head_dim=4)
  config_checks.check(tiny_config, num_devices=1)
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  summary = loop.train_and_evaluate(tiny_config, str(tmp_path), mesh)
  loaded = loading.load_run(str(tmp_path))
  assert (loaded.model_cfg.parametrization, loaded.model_cfg.base_width) == ("mup", 16)
  assert nnx.merge(loaded.graphdef, loaded.params).output_multiplier == 0.5
  jax.tree.map(
    np.testing.assert_array_equal,
    sharding.host_copy(loaded.params),
    sharding.host_copy(summary["state"].params),
  )


def test_a_status_that_cannot_be_written_leaves_the_previous_one(tmp_path):
  workdir = tmp_path / "run"
  with small_disk(workdir, "8k") as fill:
    run_files.write_status(str(workdir), run_files.FINISHED, step=8)
    fill()
    with pytest.raises(OSError, match="No space left on device"):  # a detail of 2 pages
      run_files.write_status(str(workdir), run_files.FAILED, step=8, detail="x" * 5000)
    assert (run_files.read_status(str(workdir)) or {}).get("status") == run_files.FINISHED


def test_run_files_on_a_full_disk_are_whole_or_absent(tiny_config, tmp_path):
  workdir = tmp_path / "run"
  tokenizer = CharTokenizer("abc")
  model_cfg = model_config.architecture(tiny_config.model, tokenizer.vocab_size)
  with small_disk(workdir, "8k") as fill:
    fill()
    with pytest.raises(OSError, match="No space left on device"):
      run_files.write_run_files(str(workdir), tiny_config, model_cfg, tokenizer)
    assert [p.name for p in workdir.iterdir() if p.name != ".filler"] == []


def test_a_resume_on_data_prepared_with_another_tokenizer_is_refused(tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  trained = CharTokenizer("abc")
  model_cfg = model_config.architecture(tiny_config.model, trained.vocab_size)
  run_files.write_run_files(workdir, tiny_config, model_cfg, trained)
  run_files.write_run_files(workdir, tiny_config, model_cfg, CharTokenizer("abc"), resumed_step=4)
  with pytest.raises(config_checks.ConfigError, match=r"trained with a tokenizer .* other than"):
    run_files.write_run_files(workdir, tiny_config, model_cfg, CharTokenizer("abd"), resumed_step=4)
