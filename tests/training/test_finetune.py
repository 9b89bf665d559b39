import json
import random

import jax

from lm.runtime import sharding
from lm.training import loop


def _labelled_file(tmp_path, n=480):
  rng = random.Random(0)
  path = tmp_path / "labelled.jsonl"
  with open(path, "w") as f:
    for _ in range(n):
      label = rng.randrange(2)
      noise = "".join(rng.choice("abcdefghik") for _ in range(rng.randrange(3, 10)))
      f.write(
        json.dumps({"text": f"{noise} {'good' if label else 'bad'} {noise[::-1]}", "label": label})
        + "\n"
      )
  return str(path)


def _classify(config, tmp_path, steps=60):
  config.data.dataset = "local"
  config.data.path = _labelled_file(tmp_path)
  config.data.validation_fraction = 0.2
  config.model.num_classes = 2
  config.model.dropout = 0.0
  config.optim.learning_rate = 3e-3
  config.optim.warmup_steps = 5
  config.train.steps = steps
  config.train.eval_every = steps
  config.train.checkpoint_every = steps
  config.train.eval_batches = -1
  return config


def test_decoder_classifier_from_scratch_learns(tiny_config, tmp_path):
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  out = loop.train_and_evaluate(_classify(tiny_config, tmp_path), str(tmp_path / "cls"), mesh)
  print(f"eval accuracy {out['eval_accuracy']:.3f}")
  assert out["eval_accuracy"] >= 0.95, out["eval_accuracy"]


def test_encoder_fine_tuned_from_pretrained_run_learns(tiny_config, tmp_path):
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  tiny_config.model.kind = "encoder"
  tiny_config.model.norm_position = "post"
  tiny_config.model.activation = "gelu"
  tiny_config.train.steps = 4
  pre = loop.train_and_evaluate(tiny_config, str(tmp_path / "pre"), mesh)
  config = _classify(tiny_config, tmp_path)
  config.init_from = str(tmp_path / "pre")
  config.optim.freeze_embeddings = True
  out = loop.train_and_evaluate(config, str(tmp_path / "ft"), mesh)
  assert out["start_step"] == 0
  print(f"eval accuracy {out['eval_accuracy']:.3f}")
  assert out["eval_accuracy"] >= 0.95, out["eval_accuracy"]
  params = sharding.host_copy(out["state"].params)
  pre_params = sharding.host_copy(pre["state"].params)
  assert (params["embed"] == pre_params["embed"]).all()  # frozen
  assert not (params["blocks"][1]["mlp"]["w_in"] == pre_params["blocks"][1]["mlp"]["w_in"]).all()
