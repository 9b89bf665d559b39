import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lm import run, sharding, train


def test_a_run_loads_with_its_architecture_and_execution(tiny_config, tmp_path):
  tiny_config.train.steps = 2
  tiny_config.optim.warmup_steps = 1
  tiny_config.execution.logits_dtype = "bfloat16"
  summary = train.train_and_evaluate(tiny_config, str(tmp_path),
                                     sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
  model_json = json.loads((tmp_path / "model.json").read_text())
  assert "logits_dtype" not in model_json and model_json["d_model"] == 32
  loaded = run.load_run(str(tmp_path))
  assert loaded.step == 2 and loaded.model_cfg.d_model == 32
  jax.tree.map(np.testing.assert_array_equal, sharding.host_copy(loaded.params),
               train.host_params(summary["state"]))
  tokens = jnp.zeros((1, 4), jnp.int32)
  assert jnp.dtype(nnx.merge(loaded.graphdef, loaded.params)(tokens).dtype) == jnp.bfloat16


def test_a_run_from_before_the_config_split_loads(tiny_config, tmp_path):
  """Older runs kept dtypes and kernels in model.json and had no `execution` section."""
  tiny_config.train.steps = 2
  tiny_config.optim.warmup_steps = 1
  train.train_and_evaluate(tiny_config, str(tmp_path),
                           sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
  model_json = json.loads((tmp_path / "model.json").read_text())
  model_json.update(param_dtype="float32", compute_dtype="float32", attention_impl="xla",
                    remat="none", scan_layers=False, logits_dtype="bfloat16")
  (tmp_path / "model.json").write_text(json.dumps(model_json))
  config = json.loads((tmp_path / "config.json").read_text())
  del config["execution"]
  (tmp_path / "config.json").write_text(json.dumps(config))
  loaded = run.load_run(str(tmp_path))
  assert loaded.step == 2
  tokens = jnp.zeros((1, 4), jnp.int32)
  assert jnp.dtype(nnx.merge(loaded.graphdef, loaded.params)(tokens).dtype) == jnp.bfloat16
