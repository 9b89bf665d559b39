"""The training loop: build an experiment from config, then train, evaluate and checkpoint.

This is the one place where model, data, optimizer and checkpoints meet.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import time
from typing import Any

import jax
from jax.sharding import Mesh

from lm import checkpoint, config_checks, distributed, metrics, run, sharding
from lm.model import counts
from lm.data import labelled, pipeline, token_cache
from lm.data.tokenizer import CharTokenizer
from lm.hardware import mesh_peak_flops
from lm.model import config as model_config
from lm.model.config import TransformerConfig
from lm.objectives import Objective, objective_for
from lm.step import (StateLayout, TrainState, eval_sums, jit_train_step, make_eval_step,
                     state_layout)

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
  """The loss or gradient became NaN or inf."""


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


def _data(config, tokenizer, kind: str):
  if config.model.num_classes:
    if tokenizer is None:
      if config.data.tokenizer != "char":
        raise config_checks.ConfigError("classification from scratch trains a 'char' tokenizer;"
                                        " use config.init_from for another one")
      splits = labelled.read_splits(config.data)
      tokenizer = CharTokenizer.train(t for t, _ in splits[config.data.train_split])
    return labelled.labelled_data(config.data, tokenizer, wrap=kind == "encoder")
  return token_cache.tokenized_data(config.data, tokenizer)


def dataset(exp: "Experiment", split: str, *, shuffle_seed: int | None, repeat: bool):
  """This process's batches of `split`: LM windows, or labelled examples for classification."""
  cfg = exp.config
  kw = dict(shuffle_seed=shuffle_seed, repeat=repeat, process_index=jax.process_index(),
            process_count=jax.process_count())
  if isinstance(exp.data, labelled.LabelledData):
    return labelled.example_batches(*exp.data.splits[split], cfg.data.batch_size, **kw)
  return pipeline.window_batches(exp.data.splits[split], cfg.data.seq_len, cfg.data.batch_size,
                                 **kw)


def build(config, mesh: Mesh | None = None) -> Experiment:
  """Checks the config and builds data, model, optimizer and shardings over the mesh."""
  num_devices = mesh.size if mesh is not None else jax.device_count()
  config_checks.check(config, num_devices, jax.process_count())
  mesh = mesh if mesh is not None else sharding.make_mesh(config.mesh)
  pretrained = run.load_pretrained(config.init_from) if config.init_from else None
  if pretrained is None:
    data = distributed.process_zero_first(lambda: _data(config, None, config.model.kind), "data")
    model_cfg = model_config.architecture(config.model, data.tokenizer.vocab_size)
  else:
    # The pretrained architecture, with this run's classifier and dropout.
    model_cfg = dataclasses.replace(pretrained.model_cfg, num_classes=config.model.num_classes,
                                    dropout=config.model.dropout)
    if pretrained.tokenizer is None:
      raise config_checks.ConfigError(f"config.init_from={config.init_from!r} has no tokenizer")
    if config.optim.freeze_layers > model_cfg.num_layers:
      raise config_checks.ConfigError(
          f"config.optim.freeze_layers={config.optim.freeze_layers} exceeds the "
          f"{model_cfg.num_layers} layers of config.init_from={config.init_from!r}")
    data = distributed.process_zero_first(
        lambda: _data(config, pretrained.tokenizer, model_cfg.kind), "data")
  _require_fits(config, model_cfg)
  layout = state_layout(model_cfg, model_config.execution(config.execution), config.optim,
                        config.train.steps, mesh)
  host = None if pretrained is None else sharding.host_copy(pretrained.params)
  return Experiment(config, mesh, data, layout,
                    objective_for(model_cfg, data.tokenizer, config.mlm), host)


def _require_fits(config, model_cfg: TransformerConfig) -> None:
  if config.data.seq_len > model_cfg.max_seq_len:
    raise config_checks.ConfigError(
        f"config.data.seq_len={config.data.seq_len} exceeds the model's max_seq_len="
        f"{model_cfg.max_seq_len}")


def start_from_pretrained(exp: Experiment, state: TrainState) -> TrainState:
  """`state` with the pretrained params (a new classifier stays as initialised) and a fresh
  optimizer state: step 0, new schedule."""
  fresh = sharding.host_copy(state.params)

  def take(path, value):
    node = exp.pretrained
    for p in path:
      key = p.key
      if not isinstance(node, dict) or key not in node:
        if path[0].key == "classifier":
          return value
        raise KeyError(f"config.init_from={exp.config.init_from!r} lacks parameter "
                       f"{'/'.join(str(q.key) for q in path)}")
      node = node[key]
    if node.shape != value.shape:
      raise ValueError(f"config.init_from: parameter {'/'.join(str(q.key) for q in path)} has "
                       f"shape {node.shape}, the model {value.shape}")
    return node.astype(value.dtype)

  params = jax.device_put(jax.tree_util.tree_map_with_path(take, fresh),
                          exp.layout.shardings.params)
  opt_state = jax.jit(exp.layout.tx.init, out_shardings=exp.layout.shardings.opt_state)(params)
  return state.replace(params=params, opt_state=opt_state)


def evaluate(exp: Experiment, eval_step, params) -> dict[str, float]:
  """Weighted mean loss (and accuracy, but for the LM objective) over
  `config.train.eval_batches` batches of the eval split."""
  cfg = exp.config
  ds = dataset(exp, cfg.data.eval_split, shuffle_seed=None, repeat=False)
  num = len(ds) if cfg.train.eval_batches < 0 else min(cfg.train.eval_batches, len(ds))
  if num == 0:
    raise ValueError(f"the eval split has fewer than config.data.batch_size="
                     f"{cfg.data.batch_size} windows")
  totals = eval_sums(eval_step, params, (ds[i] for i in range(num)), exp.mesh)
  out = {"eval_loss": totals["loss"] / totals["weight"]}
  if "correct" in totals:
    out["eval_accuracy"] = totals["correct"] / totals["weight"]
  return out


def _format_progress(step: int, total: int, m: dict[str, float]) -> str:
  parts = [f"step {step}/{total}", f"loss {m['loss']:.4f}", f"lr {m['lr']:.2e}"]
  if "accuracy" in m:
    parts.append(f"acc {m['accuracy']:.3f}")
  if "tokens_per_s" in m:
    eta = int(m["eta_s"])
    parts += [f"{m['tokens_per_s'] / 1e3:.1f}k tok/s", f"MFU {100 * m['mfu']:.2f}%",
              f"ETA {eta // 60}m{eta % 60:02d}s"]
  return " | ".join(parts)


class _Preemption:
  """Turns SIGTERM into a flag the loop checks, so it saves before exiting."""

  def __init__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)


def train_and_evaluate(config, workdir: str, mesh: Mesh | None = None) -> dict[str, Any]:
  """Trains per `config` in `workdir`, resuming from its latest checkpoint if there is one.

  Returns a summary: final step, last train loss, last eval loss, compile count, wall time.
  """
  t_start = time.perf_counter()
  exp = build(config, mesh)
  cfg = exp.config
  if jax.process_index() == 0:
    run.write_run_files(workdir, exp.config, exp.model_cfg, exp.data.tokenizer)
  writer = metrics.MetricWriter(workdir, enabled=jax.process_index() == 0)
  mngr = checkpoint.manager(workdir, every=cfg.train.checkpoint_every,
                            keep=cfg.train.keep_checkpoints, use_async=cfg.train.async_checkpoints)
  train_ds = dataset(exp, cfg.data.train_split, shuffle_seed=cfg.seed, repeat=True)
  data_iter = pipeline.iterate(train_ds, cfg.data.prefetch, cfg.data.num_threads)

  if mngr.latest_step() is not None:
    state, data_state = checkpoint.restore(mngr, exp.layout.abstract)
    data_iter.set_state(data_state)
    log.info("resumed from step %d in %s", int(state.step), mngr.directory)
  else:
    init = jax.jit(exp.layout.init_fn, out_shardings=exp.layout.shardings)
    state = init(jax.random.key(cfg.seed))
    if exp.pretrained is not None:
      state = start_from_pretrained(exp, state)
      log.info("initialised from %s", cfg.init_from)

  train_step = jit_train_step(exp.layout, cfg.train, exp.mesh, exp.objective)
  eval_step = jax.jit(make_eval_step(exp.layout.graphdef, exp.objective, cfg.seed))

  n_params = counts.param_counts(exp.model_cfg)
  peak, peak_name = mesh_peak_flops(list(exp.mesh.devices.flat))
  tokens_per_step = cfg.data.batch_size * cfg.data.seq_len
  meter = metrics.Throughput(tokens_per_step,
                             counts.training_flops_per_token(exp.model_cfg, cfg.data.seq_len),
                             peak, cfg.train.steps)
  log.info("model: %s params (%s non-embedding); mesh %s; MFU peak: %s",
           f"{n_params['total']:,}", f"{n_params['non_embedding']:,}", dict(exp.mesh.shape),
           peak_name)

  step = int(state.step)
  start_step = step
  preemption = _Preemption()
  pending = None  # (step, device metrics) of the last dispatched step, fetched one step late
  summary: dict[str, Any] = {"start_step": start_step}
  last_train_loss = last_eval_loss = math.nan
  last_eval: dict[str, float] = {}

  def fetch(step_and_metrics) -> dict[str, float]:
    at, device_metrics = step_and_metrics
    host = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
    if not (math.isfinite(host["loss"]) and math.isfinite(host["grad_norm"])):
      good = mngr.latest_step()
      raise NonFiniteLossError(
          f"loss {host['loss']} / grad norm {host['grad_norm']} at step {at}; last good "
          f"checkpoint: {'none' if good is None else f'step {good}'} in {mngr.directory}")
    return host

  def record(step_and_metrics) -> float:
    host = fetch(step_and_metrics)
    at = step_and_metrics[0]
    if at % cfg.train.log_every == 0:
      host.update(meter.report(at))
      log.info(_format_progress(at, cfg.train.steps, host))
      writer.write(at, host)
    return host["loss"]

  compiles = metrics.CompileCounter().start()
  try:
    while step < cfg.train.steps:
      batch = sharding.global_batch(next(data_iter), exp.mesh)
      state, step_metrics = train_step(state, batch)
      step += 1
      if pending is not None:
        last_train_loss = record(pending)
      if step == start_step + 1:
        meter.reset(step)  # exclude compilation from throughput
      pending = (step, step_metrics)
      stop = preemption.requested or step - start_step == cfg.train.stop_after_steps
      last = step == cfg.train.steps or stop
      if step % cfg.train.eval_every == 0 or step == cfg.train.steps:
        last_eval = evaluate(exp, eval_step, state.params)
        last_eval_loss = last_eval["eval_loss"]
        log.info("step %d | %s", step, " | ".join(f"{k} {v:.4f}" for k, v in last_eval.items()))
        writer.write(step, last_eval)
      if step % cfg.train.checkpoint_every == 0 or last:
        fetch(pending)  # never save a state that followed a NaN
        checkpoint.save(mngr, step, state, data_iter.get_state(), force=last)
      if stop:
        log.warning("%s: saved step %d, exiting", "SIGTERM" if preemption.requested else
                    "config.train.stop_after_steps", step)
        summary["preempted"] = preemption.requested
        break
    if pending is not None:
      last_train_loss = record(pending)
  finally:
    compiles.stop()
    mngr.wait_until_finished()
    preemption.restore()
    writer.close()

  summary.update(last_eval)
  summary.update(step=step, train_loss=last_train_loss, eval_loss=last_eval_loss,
                 train_step_compiles=compiles.count("train_step"),
                 wall_s=time.perf_counter() - t_start, state=state,
                 tokens_per_step=tokens_per_step)
  log.info("done: step %d, train loss %.4f, eval loss %.4f, train_step compiled %d time(s), "
           "%.1fs", step, last_train_loss, last_eval_loss, summary["train_step_compiles"],
           summary["wall_s"])
  return summary


def host_params(state: TrainState) -> Any:
  """The params as host numpy arrays (gathered from every device)."""
  return sharding.host_copy(state.params)
