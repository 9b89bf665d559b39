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
from lm.training import checkpoint, early_signals, meters
from lm.training.experiment import Experiment, build, dataset, start_from_pretrained
from lm.training.preemption import Preemption
from lm.training.step import eval_sums, jit_train_step, make_eval_step
from lm.training.watchdog import Watchdog, exit_stalled

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
  """The loss or gradient became NaN or inf."""


def evaluate(experiment: Experiment, eval_step, params) -> dict[str, float]:
  """Weighted mean loss (and accuracy, but for the LM objective) over
  `config.train.eval_batches` batches of the eval split."""
  cfg = experiment.config
  ds = dataset(experiment, cfg.data.eval_split, shuffle_seed=None, repeat=False)
  num = len(ds) if cfg.train.eval_batches < 0 else min(cfg.train.eval_batches, len(ds))
  if num == 0:
    raise ValueError(
      f"the eval split has fewer than config.data.batch_size={cfg.data.batch_size} windows"
    )
  totals = eval_sums(eval_step, params, (ds[i] for i in range(num)), experiment.mesh)
  out = {"eval_loss": totals["loss"] / totals["weight"]}
  if "correct" in totals:
    out["eval_accuracy"] = totals["correct"] / totals["weight"]
  return out


def _format_progress(step: int, total: int, row: dict[str, float]) -> str:
  parts = [f"step {step}/{total}", f"loss {row['loss']:.4f}", f"lr {row['lr']:.2e}"]
  if "accuracy" in row:
    parts.append(f"acc {row['accuracy']:.3f}")
  if "tokens_per_s" in row:
    eta = int(row["eta_s"])
    parts += [
      f"{row['tokens_per_s'] / 1e3:.1f}k tok/s",
      f"MFU {100 * row['mfu']:.2f}%",
      f"ETA {eta // 60}m{eta % 60:02d}s",
    ]
  return " | ".join(parts)


def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


_all_finite_jit = jax.jit(_all_finite)


def _close_quietly(checkpoints) -> None:
  """Closes the checkpoint manager without hiding the error that may be on its way out: its
  background writes are waited for first (closing its event loop under them makes each one
  print a traceback), and a second error from either is only logged."""
  for finish in (checkpoints.wait_until_finished, checkpoints.close):
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
  if jax.process_count() == 1:  # several: JAX's preemption notifier has SIGTERM
    early_signals.remember()
  phases = meters.PhaseTimes()
  with phases("setup"):
    experiment = build(config, mesh)
    # Before anything is written there.
    run_files.check_workdir(workdir, experiment.model_cfg, experiment.config, allow_config_change)
    train = experiment.config.train
    checkpoints = checkpoint.manager(
      workdir,
      every=train.checkpoint_every,
      keep=train.keep_checkpoints,
      use_async=train.async_checkpoints,
      keep_steps=train.keep_steps,
    )
  try:
    trainer = _Trainer(experiment, workdir, checkpoints, phases)
    trainer.run()
  except BaseException as e:
    detail = ": ".join(filter(None, (type(e).__name__, str(e))))
    _record_status(workdir, run_files.FAILED, detail=detail)
    raise
  finally:
    _close_quietly(checkpoints)
  summary = trainer.summary(time.perf_counter() - t_start)
  if trainer.stopped_by is not None:
    _record_status(workdir, run_files.PREEMPTED, trainer.step, trainer.stopped_by)
  else:
    _record_status(workdir, run_files.FINISHED, trainer.step)
  return summary


def _record_status(workdir: str, status: str, step: int | None = None, detail: str = "") -> None:
  """`run_files.write_status` from process 0; a failure to write is logged, never raised (it would
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


def is_due(step: int, every: int) -> bool:
  """Whether an action repeated every `every` steps (logging, evaluation, checkpoints) falls
  at `step`."""
  return every > 0 and step % every == 0


class _Trainer:
  """One invocation of the loop: the state, its data and writers, and the named actions the
  loop is made of. `run()` trains until the end, a requested stop or an error."""

  def __init__(self, experiment: Experiment, workdir: str, checkpoints, phases: meters.PhaseTimes):
    self.experiment, self.config, self.workdir = experiment, experiment.config, workdir
    self.checkpoints, self.phases = checkpoints, phases
    self.writes = jax.process_index() == 0  # process 0 writes the run's files
    train = dataset(
      experiment, self.config.data.train_split, shuffle_seed=self.config.seed, repeat=True
    )
    data = self.config.data
    self.data_iter = pipeline.iterate(train, data.prefetch, data.num_threads)
    with phases("init"):
      self.state, resumed = self._restore_or_init()
    self.step = self.start_step = int(self.state.step)
    self._write_run_files(resumed)
    self.writer = self._metric_writer()
    self.programs, self.eval_step = self._jit_steps()
    self.meter = self._throughput()
    self.preemption = Preemption()
    self.watchdog = Watchdog(self.config.train.watchdog_s, stall_handler(workdir))
    self.pending = None  # (last step, device metrics) of the last dispatch, fetched one late
    self.stopped_by: str | None = None  # what ended the run early (a signal, a step limit)
    self.train_loss, self.last_eval = math.nan, {}

  def _restore_or_init(self):
    """The newest checkpoint that restores (state and data position), else a new state (from
    the pretrained weights if any); and whether it resumed."""
    layout, config = self.experiment.layout, self.config
    restored = checkpoint.restore_newest(self.checkpoints, layout.abstract)
    if restored is not None:
      state, data_state, _ = restored
      self.data_iter.set_state(data_state)
      log.info("resumed from step %d in %s", int(state.step), self.checkpoints.directory)
      return state, True
    state = jax.jit(layout.init_fn, out_shardings=layout.shardings)(jax.random.key(config.seed))
    if self.experiment.pretrained is not None:
      state = start_from_pretrained(self.experiment, state)
      log.info("initialised from %s", config.init_from)
    return state, False

  def _write_run_files(self, resumed: bool) -> None:
    if self.writes:
      run_files.write_run_files(
        self.workdir,
        self.config,
        self.experiment.model_cfg,
        self.experiment.data.tokenizer,
        resumed_step=self.step if resumed else None,
      )
      run_files.write_status(self.workdir, run_files.RUNNING, self.step)

  def _metric_writer(self) -> metrics.MetricWriter:
    """JSONL and TensorBoard (and W&B if asked); rows past the restored step are replayed, so
    they are dropped and each file stays one curve."""
    wandb = self.writes and self.config.train.wandb_project
    mirror = wandb_mirror.WandbWriter(self.workdir, self.config) if wandb else None
    return metrics.MetricWriter(
      self.workdir, enabled=self.writes, resume_step=self.step, mirror=mirror
    )

  def _jit_steps(self) -> tuple[dict[int, Callable], Callable]:
    """The training programs by the steps each runs (1, and `train.steps_per_dispatch`), and
    the evaluation step."""
    experiment, train = self.experiment, self.config.train
    args = (experiment.layout, train, experiment.mesh, experiment.objective)
    programs = {n: jit_train_step(*args, n) for n in {1, train.steps_per_dispatch}}
    graphdef = experiment.layout.graphdef
    return programs, jax.jit(make_eval_step(graphdef, experiment.objective, self.config.seed))

  def _throughput(self) -> meters.Throughput:
    model_cfg, mesh, data = self.experiment.model_cfg, self.experiment.mesh, self.config.data
    peak, peak_name = mesh_peak_flops(list(mesh.devices.flat))
    flops_per_token = counts.training_flops_per_token(model_cfg, data.seq_len)
    n_params = counts.param_counts(model_cfg)
    log.info(
      "model: %s params (%s non-embedding); mesh %s; MFU peak: %s",
      f"{n_params['total']:,}",
      f"{n_params['non_embedding']:,}",
      dict(mesh.shape),
      peak_name,
    )
    tokens_per_step = data.batch_size * data.seq_len
    return meters.Throughput(tokens_per_step, flops_per_token, peak, self.config.train.steps)

  def run(self) -> None:
    """Trains to `train.steps` or a requested stop: each dispatch runs one step or
    `steps_per_dispatch`, then evaluates and saves where due."""
    train = self.config.train
    compiles = meters.CompileCounter().start()
    self.stopped_by = self.preemption.requested_before_start()
    try:
      while self.step < train.steps and self.stopped_by is None:
        num = self._steps_this_dispatch()
        batch = self._read_batches(num)
        first = self.step + 1
        self._dispatch(batch, num)
        self.stopped_by = self._stop_requested(first)
        last = self.step == train.steps or self.stopped_by is not None
        if is_due(self.step, train.eval_every) or self.step == train.steps:
          self._evaluate()
        kept = self.step in train.keep_steps
        if is_due(self.step, train.checkpoint_every) or last or kept:
          self._save(force=last or kept)
      self._log_pending()
      self._beat("finishing the checkpoint writes")
      with self.phases("checkpoint"):
        self.checkpoints.wait_until_finished()
    finally:
      compiles.stop()
      self.watchdog.stop()
      self.preemption.restore()
      self.writer.close()
    self.compiles = compiles.count("train_step") + compiles.count("train_steps")

  def _steps_this_dispatch(self) -> int:
    """`train.steps_per_dispatch`, or 1 where an evaluation, checkpoint (kept steps too),
    requested stop or the end comes sooner: a multi-step dispatch never runs past one."""
    train = self.config.train
    stops = [
      train.steps,
      (self.step // train.eval_every + 1) * train.eval_every,
      (self.step // train.checkpoint_every + 1) * train.checkpoint_every,
      *(s for s in train.keep_steps if s > self.step),
    ]
    if train.stop_after_steps > 0:
      stops.append(self.start_step + train.stop_after_steps)
    return train.steps_per_dispatch if min(stops) - self.step >= train.steps_per_dispatch else 1

  def _read_batches(self, num: int) -> dict[str, jax.Array]:
    """The next `num` global batches, stacked if `num` > 1, placed over the mesh."""
    self._beat(f"reading the batch of step {self.step + 1}")
    mesh = self.experiment.mesh
    with self.phases("input"):
      local = [next(self.data_iter) for _ in range(num)]
      if num == 1:
        return sharding.global_batch(local[0], mesh)
      stacked = {k: np.stack([b[k] for b in local]) for k in local[0]}
      return sharding.global_batch(stacked, mesh, stacked=True)

  def _dispatch(self, batch: dict[str, jax.Array], num: int) -> None:
    """Runs `num` steps on `batch`, then logs the previous dispatch's metrics (one late, so
    that the host never waits for the device it has just given work)."""
    first = self.step + 1
    with self.phases("compile" if self.step == self.start_step else "steps"):
      self.state, step_metrics = self.programs[num](self.state, batch)
    self.step += num
    if self.pending is not None:
      with self.phases("steps"):  # waits for the previous dispatch's results
        self._log_pending()
    if first == self.start_step + 1:
      self.meter.reset(self.step)  # compilation is not throughput
    self.pending = (self.step, step_metrics)

  def _stop_requested(self, first: int) -> str | None:
    """What asks the run to stop after this dispatch (steps `first` to now), if anything: a
    signal (asked of every host at each step, so that all stop at the same one) or
    `train.stop_after_steps`."""
    # Asked at each step on every host (a collective with several): no short-circuit.
    requested = [self.preemption.requested(s) for s in range(first, self.step + 1)]
    if any(requested):
      return self.preemption.signal_name or "SIGTERM"
    if self.step - self.start_step == self.config.train.stop_after_steps:
      return "config.train.stop_after_steps"
    return None

  def _beat(self, doing: str) -> None:
    """Tells the watchdog what the loop does now; armed once the first step (and its
    compilation) is behind."""
    if self.step > self.start_step + 1:
      self.watchdog.beat(doing)

  def _fetch(self, dispatched) -> list[tuple[int, dict[str, float]]]:
    """(step, host metrics) of each step of a dispatch `(last step, device metrics)`; a
    non-finite loss or gradient stops the run."""
    at, device_metrics = dispatched
    self._beat(f"waiting for step {at}'s results (its device work and collectives)")
    host = jax.device_get(device_metrics)
    n = next(iter(host.values())).size  # 1, or the steps of a multi-step dispatch
    rows = [
      (at - n + 1 + i, {k: float(v.reshape(-1)[i]) for k, v in host.items()}) for i in range(n)
    ]
    for row_step, row in rows:
      if not (math.isfinite(row["loss"]) and math.isfinite(row["grad_norm"])):
        raise NonFiniteLossError(
          f"loss {row['loss']} / grad norm {row['grad_norm']} at step {row_step}; "
          f"{self._last_good()}"
        )
    return rows

  def _log_pending(self) -> None:
    """Checks and logs the metrics of the dispatch not fetched yet, if any."""
    if self.pending is None:
      return
    rows, self.pending = self._fetch(self.pending), None
    due = [(at, row) for at, row in rows if is_due(at, self.config.train.log_every)]
    if due:
      # The steps of one dispatch end together: its rows share the rate measured to its end.
      rate = self.meter.report(rows[-1][0])
      for at, row in due:
        row.update(rate)
        log.info(_format_progress(at, self.config.train.steps, row))
        self.writer.write(at, row)
    self.train_loss = rows[-1][1]["loss"]

  def _evaluate(self) -> None:
    self._log_pending()  # the training rows before the evaluation's
    self._beat(f"evaluating at step {self.step}")
    with self.phases("eval"):
      self.last_eval = evaluate(self.experiment, self.eval_step, self.state.params)
    values = " | ".join(f"{k} {v:.4f}" for k, v in self.last_eval.items())
    log.info("step %d | %s", self.step, values)
    self.writer.write(self.step, self.last_eval)

  def _save(self, force: bool) -> None:
    """Saves a checkpoint of the state (if due, or `force`); a state whose steps or params are
    not finite is never saved."""
    if self.pending is not None:
      self._fetch(self.pending)  # raises if a step of it was not finite
    self._beat(f"checking and saving the checkpoint of step {self.step}")
    with self.phases("checkpoint"):
      if not bool(_all_finite_jit(self.state.params)):
        raise NonFiniteLossError(
          f"the parameters are not finite after step {self.step} (not saved); {self._last_good()}"
        )
      checkpoint.save(
        self.checkpoints, self.step, self.state, self.data_iter.get_state(), force=force
      )

  def _last_good(self) -> str:
    good = self.checkpoints.latest_step()
    where = "none" if good is None else f"step {good}"
    return f"last good checkpoint: {where} in {self.checkpoints.directory}"

  def summary(self, wall_s: float) -> dict[str, Any]:
    """What `train_and_evaluate` returns; also logs how the run ended."""
    data = self.config.data
    summary = {
      "start_step": self.start_step,
      "preempted": self.stopped_by,
      **self.last_eval,
      "step": self.step,
      "train_loss": self.train_loss,
      "eval_loss": self.last_eval.get("eval_loss", math.nan),
      "train_step_compiles": self.compiles,
      "wall_s": wall_s,
      "phases_s": dict(self.phases.seconds),
      "state": self.state,
      "tokens_per_step": data.batch_size * data.seq_len,
    }
    log.log(logging.WARNING if self.stopped_by else logging.INFO, "%s", self._ending(summary))
    return summary

  def _ending(self, summary: dict[str, Any]) -> str:
    steps = self.config.train.steps
    if self.stopped_by is not None and self.step == self.start_step:
      return (
        f"preempted at step {self.step} of {steps} ({self.stopped_by}) before its first step: "
        "resume with the same command"
      )
    if self.stopped_by is not None:
      return (
        f"preempted at step {self.step} of {steps} ({self.stopped_by}), checkpoint saved: "
        "resume with the same command"
      )
    if self.start_step >= steps:
      metrics_file = os.path.join(self.workdir, "metrics.jsonl")
      return (
        f"already finished at step {self.step} (config.train.steps={steps}): nothing to "
        f"train; its losses are in {metrics_file}"
      )
    return (
      f"done: step {self.step}, train loss {self.train_loss:.4f}, eval loss "
      f"{summary['eval_loss']:.4f}, train_step compiled {self.compiles} time(s), "
      f"{summary['wall_s']:.1f}s ({self.phases.line(summary['wall_s'])})"
    )
