"""The training loop: train, evaluate and checkpoint an experiment built from a config.

With lm/training/experiment.py, the one place where model, data, optimizer and checkpoints
meet.
"""

from __future__ import annotations

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

from lm.data import pipeline
from lm.model import counts
from lm.runs import metrics, run_files, wandb_mirror
from lm.runtime import sharding
from lm.runtime.hardware import mesh_peak_flops
from lm.training import checkpoint, meters
from lm.training.experiment import Experiment, build, dataset, start_from_pretrained
from lm.training.preemption import Preemption
from lm.training.step import eval_sums, jit_train_step, make_eval_step
from lm.training.watchdog import Watchdog, exit_stalled

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
  """The loss or gradient became NaN or inf."""


def evaluate(exp: Experiment, eval_step, params) -> dict[str, float]:
  """Weighted mean loss (and accuracy, but for the LM objective) over
  `config.train.eval_batches` batches of the eval split."""
  cfg = exp.config
  ds = dataset(exp, cfg.data.eval_split, shuffle_seed=None, repeat=False)
  num = len(ds) if cfg.train.eval_batches < 0 else min(cfg.train.eval_batches, len(ds))
  if num == 0:
    raise ValueError(
      f"the eval split has fewer than config.data.batch_size={cfg.data.batch_size} windows"
    )
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
    parts += [
      f"{m['tokens_per_s'] / 1e3:.1f}k tok/s",
      f"MFU {100 * m['mfu']:.2f}%",
      f"ETA {eta // 60}m{eta % 60:02d}s",
    ]
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
    except Exception as e:
      log.debug("closing the checkpoint manager: %s", e)


def train_and_evaluate(
  config, workdir: str, mesh: Mesh | None = None, allow_config_change: bool = False
) -> dict[str, Any]:
  """Trains per `config` in `workdir`, resuming from its newest checkpoint that restores.

  A run in `workdir` trained with other settings is refused unless `allow_config_change`.
  Returns a summary: final step, last train loss, last eval loss, compile count, wall time,
  and `preempted` (the name of what stopped the run early, or None).
  """
  t_start = time.perf_counter()
  phases = meters.PhaseTimes()
  with phases("setup"):
    exp = build(config, mesh)
    cfg = exp.config
    # Before anything is written there.
    run_files.check_workdir(workdir, exp.model_cfg, cfg, allow_config_change)
    t = cfg.train
    mngr = checkpoint.manager(
      workdir,
      every=t.checkpoint_every,
      keep=t.keep_checkpoints,
      use_async=t.async_checkpoints,
      keep_steps=t.keep_steps,
    )
  try:
    summary = _train(exp, workdir, mngr, t_start, phases)
  except BaseException as e:
    _record_status(
      workdir, run_files.FAILED, detail=": ".join(filter(None, (type(e).__name__, str(e))))
    )
    raise
  finally:
    _close_quietly(mngr)
  if summary["preempted"] is not None:
    _record_status(workdir, run_files.PREEMPTED, summary["step"], summary["preempted"])
  else:
    _record_status(workdir, run_files.FINISHED, summary["step"])
  return summary


def _record_status(workdir: str, status: str, step: int | None = None, detail: str = "") -> None:
  """`run.write_status` from process 0; a failure to write is logged, never raised (it would
  hide how the run ended)."""
  if jax.process_index() != 0:
    return
  try:
    run_files.write_status(workdir, status, step, detail)
  except Exception as e:
    log.warning("could not record status %r in %s: %s", status, workdir, e)


def stall_handler(workdir: str, wait_s: float = 10.0) -> Callable[[str], None]:
  """The watchdog's action: record STALLED (waiting at most `wait_s` seconds, since the
  filesystem may be what hangs), then `exit_stalled`."""

  def on_stall(message: str) -> None:
    writer = threading.Thread(
      target=_record_status,
      args=(workdir, run_files.STALLED),
      kwargs={"detail": message},
      daemon=True,
    )
    writer.start()
    writer.join(wait_s)
    exit_stalled(message)

  return on_stall


def _train(
  exp: Experiment, workdir: str, mngr, t_start: float, phases: meters.PhaseTimes
) -> dict[str, Any]:
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
    run_files.write_run_files(
      workdir,
      exp.config,
      exp.model_cfg,
      exp.data.tokenizer,
      resumed_step=None if restored is None else step,
    )
    run_files.write_status(workdir, run_files.RUNNING, step)
  # Rows past the restored step are replayed: dropped, so that the file stays one curve.
  mirror = wandb_mirror.WandbWriter(workdir, cfg) if writes and cfg.train.wandb_project else None
  writer = metrics.MetricWriter(workdir, enabled=writes, resume_step=step, mirror=mirror)

  train_step = jit_train_step(exp.layout, cfg.train, exp.mesh, exp.objective)
  per_dispatch = cfg.train.steps_per_dispatch
  train_steps = (
    jit_train_step(exp.layout, cfg.train, exp.mesh, exp.objective, per_dispatch)
    if per_dispatch > 1
    else None
  )
  eval_step = jax.jit(make_eval_step(exp.layout.graphdef, exp.objective, cfg.seed))

  n_params = counts.param_counts(exp.model_cfg)
  peak, peak_name = mesh_peak_flops(list(exp.mesh.devices.flat))
  tokens_per_step = cfg.data.batch_size * cfg.data.seq_len
  meter = meters.Throughput(
    tokens_per_step,
    counts.training_flops_per_token(exp.model_cfg, cfg.data.seq_len),
    peak,
    cfg.train.steps,
  )
  log.info(
    "model: %s params (%s non-embedding); mesh %s; MFU peak: %s",
    f"{n_params['total']:,}",
    f"{n_params['non_embedding']:,}",
    dict(exp.mesh.shape),
    peak_name,
  )

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
    rows = [
      (at - n + 1 + i, {k: float(v.reshape(-1)[i]) for k, v in host.items()}) for i in range(n)
    ]
    for row_step, row in rows:
      if not (math.isfinite(row["loss"]) and math.isfinite(row["grad_norm"])):
        raise NonFiniteLossError(
          f"loss {row['loss']} / grad norm {row['grad_norm']} at step {row_step}; {last_good()}"
        )
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
    stops = [
      cfg.train.steps,
      (step // cfg.train.eval_every + 1) * cfg.train.eval_every,
      (step // cfg.train.checkpoint_every + 1) * cfg.train.checkpoint_every,
    ]
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
        raise NonFiniteLossError(
          f"the parameters are not finite after step {step} (not saved); {last_good()}"
        )
      checkpoint.save(mngr, step, state, data_iter.get_state(), force=force)

  compiles = meters.CompileCounter().start()
  try:
    while step < cfg.train.steps:
      num = per_dispatch if steps_to_next_stop(step) >= per_dispatch else 1
      beat(f"reading the batch of step {step + 1}")
      with phases("input"):
        local = [next(data_iter) for _ in range(num)]
        batch = (
          sharding.global_batch(local[0], exp.mesh)
          if num == 1
          else sharding.global_batch(
            {k: np.stack([b[k] for b in local]) for k in local[0]}, exp.mesh, True
          )
        )
      with phases("compile" if step == start_step else "steps"):
        state, step_metrics = (train_step if num == 1 else train_steps)(state, batch)
      first, step = step + 1, step + num
      if pending is not None:
        with phases("steps"):  # waits for the previous dispatch's results
          last_train_loss = record(pending)
      if first == start_step + 1:
        meter.reset(step)  # exclude compilation from throughput
      pending = (step, step_metrics)
      if any(preemption.requested(s) for s in range(first, step + 1)):  # each, on every host
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
  summary.update(
    step=step,
    train_loss=last_train_loss,
    eval_loss=last_eval_loss,
    train_step_compiles=compiles.count("train_step") + compiles.count("train_steps"),
    wall_s=wall_s,
    phases_s=dict(phases.seconds),
    state=state,
    tokens_per_step=tokens_per_step,
  )
  if summary["preempted"] is not None:
    log.warning(
      "preempted at step %d of %d (%s), checkpoint saved: resume with the same command",
      step,
      cfg.train.steps,
      summary["preempted"],
    )
  elif start_step >= cfg.train.steps:
    log.info(
      "already finished at step %d (config.train.steps=%d): nothing to train; its losses are in %s",
      step,
      cfg.train.steps,
      os.path.join(workdir, "metrics.jsonl"),
    )
  else:
    log.info(
      "done: step %d, train loss %.4f, eval loss %.4f, train_step compiled %d time(s), %.1fs (%s)",
      step,
      last_train_loss,
      last_eval_loss,
      summary["train_step_compiles"],
      wall_s,
      phases.line(wall_s),
    )
  return summary
