"""Loading what a training run left in its workdir: config, model, tokenizer, params."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import ml_collections
from flax import nnx

from lm import checkpoint, sharding
from lm.step import state_layout
from lm.data.tokenizer import Tokenizer, load_tokenizer
from lm.model.transformer import TransformerConfig


@dataclasses.dataclass
class TrainedRun:
  config: ml_collections.ConfigDict
  model_cfg: TransformerConfig
  tokenizer: Tokenizer
  graphdef: nnx.GraphDef
  params: Any
  step: int


def load_run(workdir: str, step: int | None = None) -> TrainedRun:
  """Restores the params of `workdir`'s latest (or given) checkpoint onto all local devices."""
  with open(os.path.join(workdir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  with open(os.path.join(workdir, "model.json")) as f:
    model_cfg = TransformerConfig(**json.load(f))
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
  layout = state_layout(model_cfg, config.optim, config.train.steps, mesh)
  mngr = checkpoint.manager(workdir, every=1, keep=1 << 30, use_async=False)
  state, _ = checkpoint.restore(mngr, layout.abstract, step, with_data=False)
  return TrainedRun(config, model_cfg, load_tokenizer(workdir), layout.graphdef, state.params,
                    int(jax.device_get(state.step)))
