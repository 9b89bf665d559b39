"""An experiment built from a config: data, model, optimizer and shardings over a mesh, and the
start from pretrained weights (`config.init_from`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from jax.sharding import Mesh

from lm.data import labelled, pipeline, token_cache
from lm.data.tokenizer import CharTokenizer, Tokenizer
from lm.model import config as model_config
from lm.model.config import TransformerConfig
from lm.runs import loading
from lm.runtime import distributed, sharding
from lm.training import config_checks
from lm.training.objectives import Objective, objective_for
from lm.training.step import StateLayout, TrainState, state_layout


@dataclasses.dataclass
class Experiment:
  """Everything built from a config before the loop: data, model, optimizer, shardings."""

  config: Any
  mesh: Mesh
  data: token_cache.TokenizedData | labelled.LabelledData
  layout: StateLayout
  objective: Objective
  pretrained: Any = None  # host params of `config.init_from`, or None

  @property
  def model_cfg(self) -> TransformerConfig:
    return self.layout.model_cfg


def _data(config, tokenizer: Tokenizer | None, kind: str):
  if config.model.num_classes:
    if tokenizer is None:
      if config.data.tokenizer != "char":
        raise config_checks.ConfigError(
          "classification from scratch trains a 'char' tokenizer;"
          " use config.init_from for another one"
        )
      splits = labelled.read_splits(config.data, num_classes=config.model.num_classes)
      tokenizer = CharTokenizer.train(t for t, _ in splits[config.data.train_split])
    return labelled.labelled_data(
      config.data, tokenizer, wrap=kind == "encoder", num_classes=config.model.num_classes
    )
  return token_cache.tokenized_data(config.data, tokenizer)


def dataset(experiment: Experiment, split: str, *, shuffle_seed: int | None, repeat: bool):
  """This process's batches of `split`: LM windows, or labelled examples for classification."""
  cfg = experiment.config
  kw = {
    "shuffle_seed": shuffle_seed,
    "repeat": repeat,
    "process_index": jax.process_index(),
    "process_count": jax.process_count(),
  }
  if isinstance(experiment.data, labelled.LabelledData):
    return labelled.example_batches(*experiment.data.splits[split], cfg.data.batch_size, **kw)
  doc_starts = experiment.data.doc_starts[split] if cfg.data.document_masking else None
  return pipeline.window_batches(
    experiment.data.splits[split],
    cfg.data.seq_len,
    cfg.data.batch_size,
    doc_starts=doc_starts,
    **kw,
  )


def build(config, mesh: Mesh | None = None) -> Experiment:
  """Checks the config and builds data, model, optimizer and shardings over the mesh."""
  num_devices = mesh.size if mesh is not None else jax.device_count()
  config_checks.check(config, num_devices, jax.process_count())
  mesh = mesh if mesh is not None else sharding.make_mesh(config.mesh)
  pretrained = loading.load_pretrained(config.init_from) if config.init_from else None
  if pretrained is None:
    data = distributed.process_zero_first(lambda: _data(config, None, config.model.kind), "data")
    model_cfg = model_config.architecture(config.model, data.tokenizer.vocab_size)
  else:
    # The pretrained architecture, with this run's classifier and dropout.
    model_cfg = dataclasses.replace(
      pretrained.model_cfg, num_classes=config.model.num_classes, dropout=config.model.dropout
    )
    config_checks.check_pretrained(config, model_cfg, pretrained.tokenizer is not None)
    data = distributed.process_zero_first(
      lambda: _data(config, pretrained.tokenizer, model_cfg.kind), "data"
    )
  layout = state_layout(
    model_cfg, model_config.execution(config.execution), config.optim, config.train.steps, mesh
  )
  host = None if pretrained is None else sharding.host_copy(pretrained.params)
  return Experiment(
    config,
    mesh,
    data,
    layout,
    objective_for(model_cfg, data.tokenizer, config.mlm, config.train.z_loss),
    host,
  )


def start_from_pretrained(experiment: Experiment, state: TrainState) -> TrainState:
  """`state` with the pretrained params (a new classifier stays as initialised) and a fresh
  optimizer state: step 0, new schedule."""
  fresh = sharding.host_copy(state.params)

  def take(path, value):
    node = experiment.pretrained
    for p in path:
      key = p.key
      if not isinstance(node, dict) or key not in node:
        if path[0].key == "classifier":
          return value
        raise KeyError(
          f"config.init_from={experiment.config.init_from!r} lacks parameter "
          f"{'/'.join(str(q.key) for q in path)}"
        )
      node = node[key]
    if node.shape != value.shape:
      raise ValueError(
        f"config.init_from: parameter {'/'.join(str(q.key) for q in path)} has "
        f"shape {node.shape}, the model {value.shape}"
      )
    return node.astype(value.dtype)

  params = jax.device_put(
    jax.tree_util.tree_map_with_path(take, fresh), experiment.layout.shardings.params
  )
  opt_state = jax.jit(
    experiment.layout.tx.init, out_shardings=experiment.layout.shardings.opt_state
  )(params)
  return dataclasses.replace(state, params=params, opt_state=opt_state)
