"""The training loop: build an experiment from config, then train, evaluate and checkpoint.

This is the one place where model, data, optimizer and checkpoints meet.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from lm import checkpoint, config_checks, distributed, metrics, run, sharding, wandb_writer
from lm.model import counts
from lm.data import labelled, pipeline, token_cache
from lm.data.tokenizer import CharTokenizer
from lm.hardware import mesh_peak_flops
from lm.model import config as model_config
from lm.model.config import TransformerConfig
from lm.objectives import Objective, objective_for
from lm.preemption import Preemption
from lm.step import (StateLayout, TrainState, eval_sums, jit_train_step, make_eval_step,
                     state_layout)
from lm.watchdog import Watchdog, exit_stalled

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
      splits = labelled.read_splits(config.data, num_classes=config.model.num_classes)
      tokenizer = CharTokenizer.train(t for t, _ in splits[config.data.train_split])
    return labelled.labelled_data(config.data, tokenizer, wrap=kind == "encoder",
                                  num_classes=config.model.num_classes)
  return token_cache.tokenized_data(config.data, tokenizer)


def dataset(exp: "Experiment", split: str, *, shuffle_seed: int | None, repeat: bool):
  """This process's batches of `split`: LM windows, or labelled examples for classification."""
  cfg = exp.config
  kw = dict(shuffle_seed=shuffle_seed, repeat=repeat, process_index=jax.process_index(),
            process_count=jax.process_count())
  if isinstance(exp.data, labelled.LabelledData):
    return labelled.example_batches(*exp.data.splits[split], cfg.data.batch_size, **kw)
  doc_starts = exp.data.doc_starts[split] if cfg.data.document_masking else None
  return pipeline.window_batches(exp.data.splits[split], cfg.data.seq_len, cfg.data.batch_size,
                                 doc_starts=doc_starts, **kw)


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
                    objective_for(model_cfg, data.tokenizer, config.mlm, config.train.z_loss),
                    host)


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


def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


_all_finite_jit = jax.jit(_all_finite)


def _close_quietly(mngr) -> None:
  """Closes the checkpoint manager without hiding the error that may be on its way out: its
  background writes are waited for first (closing its event loop under them makes each one
  print a traceback), and a second error from either is only logged."""
  for finish in (mngr.wait_until_finished, mngr.close):
    try:
      finish()
    except Exception as e:  # pylint: disable=broad-exception-caught
      log.debug("closing the checkpoint manager: %s", e)


def train_and_evaluate(config, workdir: str, mesh: Mesh | None = None,
                       allow_config_change: bool = False) -> dict[str, Any]:
  """Trains per `config` in `workdir`, resuming from its newest checkpoint that restores.

  A run in `workdir` trained with other settings is refused unless `allow_config_change`.
  Returns a summary: final step, last train loss, last eval loss, compile count, wall time,
  and `preempted` (the name of what stopped the run early, or None).
  """
  t_start = time.perf_counter()
  phases = metrics.PhaseTimes()
  with phases("setup"):
    exp = build(config, mesh)
    cfg = exp.config
    # Before anything is written there.
    run.check_workdir(workdir, exp.model_cfg, cfg, allow_config_change)
    t = cfg.train
    mngr = checkpoint.manager(workdir, every=t.checkpoint_every, keep=t.keep_checkpoints,
                              use_async=t.async_checkpoints, keep_steps=t.keep_steps)
  try:
    summary = _train(exp, workdir, mngr, t_start, phases)
  except BaseException as e:
    _record_status(workdir, run.FAILED, detail=": ".join(filter(None, (type(e).__name__,
                                                                       str(e)))))
    raise
  finally:
    _close_quietly(mngr)
  if summary["preempted"] is not None:
    _record_status(workdir, run.PREEMPTED, summary["step"], summary["preempted"])
  else:
    _record_status(workdir, run.FINISHED, summary["step"])
  return summary


def _record_status(workdir: str, status: str, step: int | None = None, detail: str = "") -> None:
  """`run.write_status` from process 0; a failure to write is logged, never raised (it would
  hide how the run ended)."""
  if jax.process_index() != 0:
    return
  try:
    run.write_status(workdir, status, step, detail)
  except Exception as e:  # pylint: disable=broad-exception-caught
    log.warning("could not record status %r in %s: %s", status, workdir, e)


def stall_handler(workdir: str, wait_s: float = 10.0) -> Callable[[str], None]:
  """The watchdog's action: record STALLED (waiting at most `wait_s` seconds, since the
  filesystem may be what hangs), then `exit_stalled`."""
  def on_stall(message: str) -> None:
    writer = threading.Thread(target=_record_status, args=(workdir, run.STALLED),
                              kwargs={"detail": message}, daemon=True)
    writer.start()
    writer.join(wait_s)
    exit_stalled(message)
  return on_stall


def _train(exp: Experiment, workdir: str, mngr, t_start: float,
           phases: metrics.PhaseTimes) -> dict[str, Any]:
  cfg = exp.config
  train_ds = dataset(exp, cfg.data.train_split, shuffle_seed=cfg.seed, repeat=True)
  data_iter = pipeline.iterate(train_ds, cfg.data.prefetch, cfg.data.num_threads)

  with phases("init"):
    restored = checkpoint.restore_newest(mngr, exp.layout.abstract)
    if restored is not None:
      state, data_state, _ = restored
      data_iter.set_state(data_state)
      log.info("resumed from step %d in %s", int(state.step), mngr.directory)
    else:
      init = jax.jit(exp.layout.init_fn, out_shardings=exp.layout.shardings)
      state = init(jax.random.key(cfg.seed))
      if exp.pretrained is not None:
        state = start_from_pretrained(exp, state)
        log.info("initialised from %s", cfg.init_from)
  step = int(state.step)
  writes = jax.process_index() == 0
  if writes:
    run.write_run_files(workdir, exp.config, exp.model_cfg, exp.data.tokenizer,
                        resumed_step=None if restored is None else step)
    run.write_status(workdir, run.RUNNING, step)
  # Rows past the restored step are replayed: dropped, so that the file stays one curve.
  mirror = wandb_writer.WandbWriter(workdir, cfg) if writes and cfg.train.wandb_project else None
  writer = metrics.MetricWriter(workdir, enabled=writes, resume_step=step, mirror=mirror)

  train_step = jit_train_step(exp.layout, cfg.train, exp.mesh, exp.objective)
  per_dispatch = cfg.train.steps_per_dispatch
  train_steps = (jit_train_step(exp.layout, cfg.train, exp.mesh, exp.objective, per_dispatch)
                 if per_dispatch > 1 else None)
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

  start_step = step
  preemption = Preemption()
  watchdog = Watchdog(cfg.train.watchdog_s, stall_handler(workdir))
  pending = None  # (last step, device metrics) of the last dispatch, fetched one late
  summary: dict[str, Any] = {"start_step": start_step, "preempted": None}
  last_train_loss = last_eval_loss = math.nan
  last_eval: dict[str, float] = {}

  def last_good() -> str:
    good = mngr.latest_step()
    return f"last good checkpoint: {'none' if good is None else f'step {good}'} in {mngr.directory}"

  def beat(doing: str) -> None:
    if step > start_step + 1:  # armed once the first step (and its compilation) is behind
      watchdog.beat(doing)

  def fetch(dispatched) -> list[tuple[int, dict[str, float]]]:
    """(step, host metrics) of each step of a dispatch `(last step, device metrics)`."""
    at, device_metrics = dispatched
    beat(f"waiting for step {at}'s results (its device work and collectives)")
    host = jax.device_get(device_metrics)
    n = next(iter(host.values())).size  # 1, or the steps of a multi-step dispatch
    rows = [(at - n + 1 + i, {k: float(v.reshape(-1)[i]) for k, v in host.items()})
            for i in range(n)]
    for row_step, row in rows:
      if not (math.isfinite(row["loss"]) and math.isfinite(row["grad_norm"])):
        raise NonFiniteLossError(f"loss {row['loss']} / grad norm {row['grad_norm']} at step "
                                 f"{row_step}; {last_good()}")
    return rows

  def record(dispatched) -> float:
    """Checks and logs a dispatch's metrics; returns its last step's train loss."""
    rows = fetch(dispatched)
    for at, host in rows:
      if at % cfg.train.log_every == 0:
        host.update(meter.report(at))
        log.info(_format_progress(at, cfg.train.steps, host))
        writer.write(at, host)
    return rows[-1][1]["loss"]

  def steps_to_next_stop(step: int) -> int:
    """Steps until the next evaluation, checkpoint (kept steps too), requested stop or the
    end: a multi-step dispatch never runs past one."""
    stops = [cfg.train.steps, (step // cfg.train.eval_every + 1) * cfg.train.eval_every,
             (step // cfg.train.checkpoint_every + 1) * cfg.train.checkpoint_every]
    stops += [s for s in cfg.train.keep_steps if s > step]
    if cfg.train.stop_after_steps > 0:
      stops.append(start_step + cfg.train.stop_after_steps)
    return min(stops) - step

  def save(step: int, force: bool) -> None:
    if pending is not None:
      fetch(pending)  # never save a state that followed a NaN
    beat(f"checking and saving the checkpoint of step {step}")
    with phases("checkpoint"):
      if not bool(_all_finite_jit(state.params)):
        raise NonFiniteLossError(f"the parameters are not finite after step {step} (not "
                                 f"saved); {last_good()}")
      checkpoint.save(mngr, step, state, data_iter.get_state(), force=force)

  compiles = metrics.CompileCounter().start()
  try:
    while step < cfg.train.steps:
      num = per_dispatch if steps_to_next_stop(step) >= per_dispatch else 1
      beat(f"reading the batch of step {step + 1}")
      with phases("input"):
        local = [next(data_iter) for _ in range(num)]
        batch = (sharding.global_batch(local[0], exp.mesh) if num == 1 else sharding.global_batch(
            {k: np.stack([b[k] for b in local]) for k in local[0]}, exp.mesh, True))
      with phases("compile" if step == start_step else "steps"):
        state, step_metrics = (train_step if num == 1 else train_steps)(state, batch)
      first, step = step + 1, step + num
      if pending is not None:
        with phases("steps"):  # waits for the previous dispatch's results
          last_train_loss = record(pending)
      if first == start_step + 1:
        meter.reset(step)  # exclude compilation from throughput
      pending = (step, step_metrics)
      if any([preemption.requested(s) for s in range(first, step + 1)]):  # each, on every host
        summary["preempted"] = preemption.signal_name or "SIGTERM"
      elif step - start_step == cfg.train.stop_after_steps:
        summary["preempted"] = "config.train.stop_after_steps"
      last = step == cfg.train.steps or summary["preempted"] is not None
      if step % cfg.train.eval_every == 0 or step == cfg.train.steps:
        last_train_loss, pending = record(pending), None  # its rows before the evaluation's
        beat(f"evaluating at step {step}")
        with phases("eval"):
          last_eval = evaluate(exp, eval_step, state.params)
        last_eval_loss = last_eval["eval_loss"]
        log.info("step %d | %s", step, " | ".join(f"{k} {v:.4f}" for k, v in last_eval.items()))
        writer.write(step, last_eval)
      kept = step in cfg.train.keep_steps
      if step % cfg.train.checkpoint_every == 0 or last or kept:
        save(step, force=last or kept)
      if summary["preempted"] is not None:
        break
    if pending is not None:
      last_train_loss = record(pending)
    beat("finishing the checkpoint writes")
    with phases("checkpoint"):
      mngr.wait_until_finished()
  finally:
    compiles.stop()
    watchdog.stop()
    preemption.restore()
    writer.close()

  wall_s = time.perf_counter() - t_start
  summary.update(last_eval)
  summary.update(step=step, train_loss=last_train_loss, eval_loss=last_eval_loss,
                 train_step_compiles=compiles.count("train_step") + compiles.count("train_steps"),
                 wall_s=wall_s, phases_s=dict(phases.seconds), state=state,
                 tokens_per_step=tokens_per_step)
  if summary["preempted"] is not None:
    log.warning("preempted at step %d of %d (%s), checkpoint saved: resume with the same command",
                step, cfg.train.steps, summary["preempted"])
  elif start_step >= cfg.train.steps:
    log.info("already finished at step %d (config.train.steps=%d): nothing to train; its "
             "losses are in %s", step, cfg.train.steps, os.path.join(workdir, "metrics.jsonl"))
  else:
    log.info("done: step %d, train loss %.4f, eval loss %.4f, train_step compiled %d time(s), "
             "%.1fs (%s)", step, last_train_loss, last_eval_loss,
             summary["train_step_compiles"], wall_s, phases.line(wall_s))
  return summary


def host_params(state: TrainState) -> Any:
  """The params as host numpy arrays (gathered from every device)."""
  return sharding.host_copy(state.params)
