"""An experiment built from a config: data, model, optimizer and shardings over a mesh, and the
start from pretrained weights (`config.init_from`)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax
from jax.sharding import Mesh

from lm.data import labelled, pipeline, sources, token_cache
from lm.data.tokenizer import CharTokenizer, Tokenizer
from lm.model import config as model_config
from lm.model.config import TransformerConfig
from lm.runs import loading
from lm.runtime import distributed, sharding
from lm.training import config_checks, optim
from lm.training.objectives import Objective, objective_for
from lm.training.step import StateLayout, TrainState, state_layout

log = logging.getLogger(__name__)


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


def _too_small(config, split: str, size: str, fits: list[str]) -> config_checks.ConfigError:
  """The error for a split of `size` smaller than a batch needs: what would fit, and more data
  (a local corpus's validation split grows with config.data.validation_fraction)."""
  field = "train_split" if split == config.data.train_split else "eval_split"
  local_eval = field == "eval_split" and config.data.dataset == sources.LOCAL
  more = "raise config.data.validation_fraction" if local_eval else "give it more data"
  hint = f"lower {' or '.join(fits)}, or {more}" if fits else more
  return config_checks.ConfigError(f"the {split} split (config.data.{field}) has {size}; {hint}")


def _check_examples_fit(config, data: labelled.LabelledData) -> None:
  """ConfigError unless each split holds one batch of examples (batches of labelled examples
  are whole ones): found now rather than at the first evaluation, after the training."""
  batch = config.data.batch_size
  for split in (config.data.train_split, config.data.eval_split):
    examples = len(data.splits[split][1])
    if examples < batch:
      size = f"{examples} examples, fewer than one batch (config.data.batch_size={batch})"
      fits = [f"config.data.batch_size to {examples}"] if examples else []
      raise _too_small(config, split, size, fits)


def _check_same_data_everywhere(data: token_cache.TokenizedData) -> None:
  """ConfigError unless every process reads data prepared with the same tokenizer (hosts that
  each prepared the corpus on a local config.data.data_dir may not have)."""
  if distributed.differs_across_processes(data.manifest["tokenizer"]):
    raise config_checks.ConfigError(
      f"the processes read data prepared with different tokenizers (this one's: "
      f"{data.directory}); put config.data.data_dir on storage every host shares (gs://), or "
      "prepare it once and copy it to each host"
    )


def _check_windows_fit(config, data: token_cache.TokenizedData) -> None:
  """ConfigError unless the train split holds one window of seq_len + 1 tokens and the eval
  split one batch of them (an evaluation reads whole batches): found now rather than when the
  loop reads the split, the eval split after the training."""
  seq_len, batch = config.data.seq_len, config.data.batch_size
  for split, needed in ((config.data.train_split, 1), (config.data.eval_split, batch)):
    tokens = len(data.splits[split])
    windows = max(tokens - 1, 0) // seq_len
    if windows >= needed:
      continue
    window = f"config.data.seq_len + 1 = {seq_len + 1} tokens"
    size = f"{tokens} tokens, fewer than one window of {window}"
    if needed > 1:
      size = (
        f"{tokens} tokens: {windows} window{'s' * (windows != 1)} of {window}, fewer than one "
        f"batch (config.data.batch_size={batch})"
      )
    fits = [f"config.data.batch_size to {windows}"] if windows else []
    if tokens - 1 >= needed:  # a seq_len of at least 1 fits
      fits.append(f"config.data.seq_len to {(tokens - 1) // needed}")
    raise _too_small(config, split, size, fits)


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
  doc_starts = experiment.data.splits[split].starts if cfg.data.document_masking else None
  return pipeline.window_batches(
    experiment.data.splits[split],
    cfg.data.seq_len,
    cfg.data.batch_size,
    doc_starts=doc_starts,
    **kw,
  )


def build(config, mesh: Mesh | None = None) -> Experiment:
  """Checks the config, builds the data and checks that its splits hold a batch, then builds
  model, optimizer and shardings over the mesh; nothing is written to the run's workdir."""
  num_devices = mesh.size if mesh is not None else jax.device_count()
  config_checks.check(config, num_devices, jax.process_count())
  warning = optim.learning_rate_warning(config.optim)
  if warning:
    log.warning(warning)
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
  if isinstance(data, labelled.LabelledData):
    _check_examples_fit(config, data)
  else:
    _check_same_data_everywhere(data)
    _check_windows_fit(config, data)
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
