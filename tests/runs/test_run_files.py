import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lm.runs import loading
from lm.runtime import sharding
from lm.training import config_checks, loop


def test_a_run_loads_checks_its_restarts_and_loads_from_before_the_config_split(
  tiny_config, tmp_path
):
  tiny_config.train.steps = 2
  tiny_config.optim.warmup_steps = 1
  tiny_config.execution.logits_dtype = "bfloat16"
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  summary = loop.train_and_evaluate(tiny_config, str(tmp_path), mesh)
  tokens = jnp.zeros((1, 4), jnp.int32)

  # The architecture in model.json, the execution in config.json; both come back.
  model_json = json.loads((tmp_path / "model.json").read_text())
  assert "logits_dtype" not in model_json and model_json["d_model"] == 32
  loaded = loading.load_run(str(tmp_path))
  assert loaded.step == 2 and loaded.model_cfg.d_model == 32
  jax.tree.map(
    np.testing.assert_array_equal,
    sharding.host_copy(loaded.params),
    sharding.host_copy(summary["state"].params),
  )
  assert jnp.dtype(nnx.merge(loaded.graphdef, loaded.params)(tokens).dtype) == jnp.bfloat16

  # A restart with another model fails naming the fields, before writing anything.
  before = {p: (tmp_path / p).read_bytes() for p in ("config.json", "model.json")}
  changed = tiny_config.copy_and_resolve_references()
  changed.model.d_model = 64
  with pytest.raises(
    config_checks.ConfigError,
    match=r"holds a run of another model, whose checkpoints cannot be restored: "
    r"config.model.d_model=64 \(the run's: 32\)",
  ):
    loop.train_and_evaluate(changed, str(tmp_path), mesh)
  assert before == {p: (tmp_path / p).read_bytes() for p in before}
  with pytest.raises(config_checks.ConfigError, match=r"--workdir=.*config.json is a file"):
    loop.train_and_evaluate(tiny_config, str(tmp_path / "config.json"), mesh)
  with pytest.raises(FileNotFoundError, match=r"holds no training run"):
    loading.load_run(str(tmp_path / "empty"))

  # Runs from before the split kept dtypes and kernels in model.json, and no `execution`.
  model_json.update(
    param_dtype="float32",
    compute_dtype="float32",
    attention_impl="xla",
    remat="none",
    scan_layers=False,
    logits_dtype="float16",
  )
  for field in ("parametrization", "base_width", "base_head_dim"):  # and before μP
    del model_json[field]
  (tmp_path / "model.json").write_text(json.dumps(model_json))
  config = json.loads((tmp_path / "config.json").read_text())
  del config["execution"]
  (tmp_path / "config.json").write_text(json.dumps(config))
  legacy = loading.load_run(str(tmp_path))
  assert legacy.step == 2 and legacy.model_cfg.parametrization == "standard"
  assert jnp.dtype(nnx.merge(legacy.graphdef, legacy.params)(tokens).dtype) == jnp.float16


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
    r"config.train.steps=3 \(the run's: 2\); resume with the run's config",
  ):
    loop.train_and_evaluate(longer, str(tmp_path), mesh)
  # What only changes how a run reports, saves or runs may change; a finished run says so.
  caplog.set_level("INFO")
  quieter = tiny_config.copy_and_resolve_references()
  quieter.train.log_every = 2
  assert loop.train_and_evaluate(quieter, str(tmp_path), mesh)["step"] == 2
  assert "already finished at step 2 (config.train.steps=2): nothing to train" in caplog.text
  assert json.loads((tmp_path / "config.step2.json").read_text())["train"]["log_every"] == 2
  summary = loop.train_and_evaluate(longer, str(tmp_path), mesh, allow_config_change=True)
  assert summary["step"] == 3
  assert (tmp_path / "config.json").read_text() == original  # the run's own config is kept
  assert json.loads((tmp_path / "config.step2.json").read_text())["train"]["steps"] == 3


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
