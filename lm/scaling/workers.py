"""A sweep on worker processes: each worker gets a share of the CPU cores or one GPU, and trains
the sweep's runs (lm/scaling/sweep.py's rounds) one after another while the others train theirs.

A worker is a process per run (the training entry point with the run's workdir and overrides)
or a reusable one (`serve`: one process that trains the runs named on its stdin in turn, so
imports, JAX and the data are set up once). How a run ended comes from its process' exit status
or the reusable worker's reply; a finished run adds its row from its metrics.jsonl. With
`scaling.eval_tasks`, a reusable worker scores each run it trained that adds a row before it
replies (lm/scaling/sweep_tasks.py), and the row takes its scores; the runs of workers of one
process per run are scored by the sweep's process once they have all finished.
"""

from __future__ import annotations

import json
import logging
import math
import os
import select
import subprocess
import time
from collections.abc import Sequence
from typing import IO, Any

from absl import logging as absl_logging

from lm import logs
from lm.runs import run_files
from lm.runtime import compile_cache
from lm.scaling import grid, progress, results, sweep, sweep_tasks
from lm.training import exit_status, loop

log = logging.getLogger(__name__)


def worker_env(slot: int, workers: int, split: str) -> tuple[dict[str, str], set[int] | None]:
  """Environment and CPU set for worker `slot` of `workers`.

  'cores': each worker gets an equal share of this process's CPUs (XLA's thread pool then
  sizes itself to it; a one-core share also turns Eigen's threading off). 'gpus': each worker
  sees one GPU (CUDA_VISIBLE_DEVICES=slot) and shares the CPUs.
  """
  env = dict(os.environ)
  if split == "gpus":
    env["CUDA_VISIBLE_DEVICES"] = str(slot)
    return env, None
  if split != "cores":
    raise ValueError(f"worker split {split!r}; valid: 'cores', 'gpus'")
  cpus = sorted(os.sched_getaffinity(0))
  share = len(cpus) // workers
  if share < 1:
    raise ValueError(f"{workers} workers for {len(cpus)} CPUs: at most one worker per CPU")
  if share == 1:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
  return env, set(cpus[slot * share : (slot + 1) * share])


def _train_logged(config, plan: grid.RunPlan, path: str, runner: sweep.Runner) -> dict[str, str]:
  """Trains `plan` in `path` with its log lines in `<path>/train.log`; returns the reply to its
  request: `name`, `status` as in status.json, `detail`."""
  root = logging.getLogger()
  handler = logging.FileHandler(os.path.join(path, "train.log"))
  handler.setFormatter(absl_logging.PythonFormatter())  # the lines train.py's output has
  logs.quiet_libraries(handler)
  root.addHandler(handler)
  try:
    summary = runner(grid.run_config(config, plan), path)
    status = run_files.PREEMPTED if summary["preempted"] else run_files.FINISHED
    return {"name": plan.name, "status": status, "detail": summary["preempted"] or ""}
  except Exception as e:
    # One run's bad luck (a non-finite loss, a full disk) need not stop the worker's others.
    log.exception("%s failed", plan.name)
    return {"name": plan.name, "status": run_files.FAILED, "detail": f"{type(e).__name__}: {e}"}
  finally:
    root.removeHandler(handler)
    handler.close()


def _score_logged(config, workdir: str, plan: grid.RunPlan, path: str) -> None:
  """Scores `plan`'s run on `scaling.eval_tasks` where it adds a row to results.jsonl; a
  failure is logged (the sweep's process scores the run again at the end, or says why not)."""
  in_table = plan.adds_row and sweep.table_of(plan) == results.RESULTS_JSONL
  if not config.scaling.eval_tasks or not in_table:
    return
  try:
    sweep_tasks.score_run(config, workdir, path)
  except Exception:
    log.exception("%s: scoring its tasks failed", plan.name)


def serve(
  config,
  workdir: str,
  requests: IO[str],
  replies: IO[str],
  runner: sweep.Runner = loop.train_and_evaluate,
) -> int:
  """A reusable worker: trains the runs named on `requests` (one name a line) one after another
  in this process (imports, JAX and the data are set up once), each logging to
  `<run>/train.log`, and answers each with a JSON line on `replies` (`name`, `status` as in
  status.json, `detail`). Returns the exit status: 0 at the end of `requests`, or
  `exit_status.PREEMPTED` after a preempted run."""
  vocab = sweep.vocab_size(config)
  for line in requests:
    # Planned again for each: the learning-rate trials finished so far change the plan.
    plan = {p.name: p for p in sweep.sweep_runs(config, vocab, workdir)[1]}[line.strip()]
    path = sweep.run_dir(workdir, plan)
    reply = _train_logged(config, plan, path, runner)
    if reply["status"] == run_files.FINISHED:
      _score_logged(config, workdir, plan, path)
    replies.write(json.dumps(reply) + "\n")
    replies.flush()
    if reply["status"] == run_files.PREEMPTED:
      return exit_status.PREEMPTED
  return 0


def _pipes(proc: subprocess.Popen) -> tuple[IO[str], IO[str]]:
  """A reusable worker's stdin (the names of the runs it is sent) and stdout (its replies)."""
  assert proc.stdin is not None and proc.stdout is not None  # started with pipes
  return proc.stdin, proc.stdout


def _ended(proc: subprocess.Popen, reusable: bool) -> tuple[str, str] | None:
  """(status, detail) of the run `proc` trains, or None while it trains."""
  if reusable:
    replies = _pipes(proc)[1]
    if select.select([replies], [], [], 0)[0]:
      line = replies.readline()
      if line:
        reply = json.loads(line)
        return reply["status"], reply["detail"]
    elif proc.poll() is None:
      return None
    return run_files.FAILED, f"worker exited with status {proc.wait()}"
  if proc.poll() is None:
    return None
  if proc.returncode == exit_status.PREEMPTED:
    return run_files.PREEMPTED, ""
  return (
    (run_files.FAILED, f"exit {proc.returncode}") if proc.returncode else (run_files.FINISHED, "")
  )


def _record(
  config,
  workdir: str,
  plan: grid.RunPlan,
  ending: tuple[str, str, float],
  vocab: int,
  prog: progress.Progress,
) -> bool:
  """Logs how a worker's run of `plan` ended (`ending`: status, detail, wall seconds) and
  appends its row if it finished (but a stable run's: it has none); returns whether it did."""
  status, detail, wall_s = ending
  path = os.path.join(workdir, plan.name)
  if status == run_files.PREEMPTED:
    log.warning("%s was preempted; run the sweep again to continue it", plan.name)
    return False
  if status == run_files.FAILED:
    log.error("%s failed (%s): see %s", plan.name, detail, os.path.join(path, "train.log"))
    return False
  step = results.logged_summary(path)["step"]
  if step < plan.steps:
    log.warning(
      "%s stopped at step %d of %d; run the sweep again to continue", plan.name, step, plan.steps
    )
    return False
  log.info("%s", prog.finished(plan, wall_s))
  if plan.adds_row:
    run_cfg = grid.run_config(config, plan)
    # The losses come from the run's metrics.jsonl.
    summary = {
      "step": step,
      "train_loss": math.nan,
      "eval_loss": math.nan,
      "wall_s": wall_s,
      "tokens_per_step": run_cfg.data.batch_size * run_cfg.data.seq_len,
      "vocab_size": vocab,
    }
    row = results.result_row(plan, run_cfg, summary, path, workdir)
    if config.scaling.eval_tasks and sweep.table_of(plan) == results.RESULTS_JSONL:
      row |= sweep_tasks.saved_columns(config, path, int(step))
    results.append_row(workdir, row, sweep.table_of(plan))
  return True


class _Pool:
  """The worker processes of a sweep and the runs they are training, by slot (0 .. workers-1).

  Without `worker_command`, each run is a process of its own: `train_command` with the run's
  workdir and overrides, its output in `<run>/train.log`. With it, each slot's worker is one
  process (`worker_command`, which calls `serve`), its own output in `<workdir>/worker<k>.log`;
  one that stopped or failed a run is not reused.
  """

  def __init__(
    self,
    workdir: str,
    workers: int,
    split: str,
    train_command: Sequence[str],
    worker_command: Sequence[str] | None,
    cache_env: dict[str, str],
  ):
    self.workdir, self.workers, self.split = workdir, workers, split
    self.train_command, self.worker_command = train_command, worker_command
    self.cache_env = cache_env
    self.reusable: dict[int, subprocess.Popen] = {}  # the reusable workers, by slot
    # slot: (process, plan, start time)
    self.running: dict[int, tuple[subprocess.Popen, grid.RunPlan, float]] = {}

  def free_slots(self) -> list[int]:
    """The slots that train nothing now."""
    return sorted(set(range(self.workers)) - set(self.running))

  def training(self) -> set[str]:
    """The names of the runs in training."""
    return {plan.name for _, plan, _ in self.running.values()}

  def _spawn(
    self, command: Sequence[str], slot: int, log_path: str, pipes: bool
  ) -> subprocess.Popen:
    env, cpus = worker_env(slot, self.workers, self.split)
    env.update(self.cache_env)
    # taskset pins before Python starts (a preexec_fn would run Python in a forked child of
    # a multithreaded process).
    pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
    with open(log_path, "ab") as out:
      return subprocess.Popen(
        [*pin, *command],
        env=env,
        stderr=out,
        stdout=subprocess.PIPE if pipes else out,
        stdin=subprocess.PIPE if pipes else None,
        text=pipes,
      )

  def start(self, slot: int, plan: grid.RunPlan) -> None:
    """Starts training `plan` on `slot`."""
    path = sweep.run_dir(self.workdir, plan)
    if self.worker_command is None:
      argv = sweep.train_argv(self.train_command, path, plan)
      proc = self._spawn(argv, slot, os.path.join(path, "train.log"), pipes=False)
    else:
      if slot not in self.reusable:
        worker_log = os.path.join(self.workdir, f"worker{slot}.log")
        self.reusable[slot] = self._spawn(self.worker_command, slot, worker_log, pipes=True)
      proc = self.reusable[slot]
      requests = _pipes(proc)[0]
      requests.write(plan.name + "\n")
      requests.flush()
    self.running[slot] = (proc, plan, time.perf_counter())

  def ended(self) -> list[tuple[grid.RunPlan, tuple[str, str, float]]]:
    """The runs that ended since the last call, each with its status, detail and wall time."""
    out = []
    for slot, (proc, plan, t0) in list(self.running.items()):
      ended = _ended(proc, self.worker_command is not None)
      if ended is None:
        continue
      del self.running[slot]
      status, detail = ended
      if slot in self.reusable and (status != run_files.FINISHED or proc.poll() is not None):
        del self.reusable[slot]  # a worker that stopped, or that failed a run, is not reused
        if proc.poll() is None:
          _pipes(proc)[0].close()
      out.append((plan, (status, detail, time.perf_counter() - t0)))
    return out

  def close(self) -> None:
    """Ends the reusable workers (their requests' end) and waits for them."""
    for proc in self.reusable.values():
      _pipes(proc)[0].close()
      proc.wait()


def _drop(plan: grid.RunPlan, queue: list[grid.RunPlan], prog: progress.Progress) -> None:
  """`plan` stopped early: it and its queued branches leave the queue and the ETA."""
  for p in [plan, *(p for p in queue if p.branch_of == plan.name)]:
    prog.dropped(p)
    if p in queue:
      queue.remove(p)


def _train_round(config, workdir: str, pool: _Pool) -> tuple[list[str], bool]:
  """Plans a round of the sweep and trains its pending runs on `pool`, a branch once its
  stable run has finished; returns the names of the runs that failed, and whether the round
  was the last (`sweep.last_round`)."""
  vocab, queue, prog = sweep.plan_round(config, workdir, pool.workers)
  last = sweep.last_round(queue)
  failed = []
  while queue or pool.running:
    for slot in pool.free_slots():
      # A branch waits for its stable run (one this sweep trains: queued or running).
      waiting = {p.name for p in queue} | pool.training()
      plan = next((p for p in queue if p.branch_of not in waiting), None)
      if plan is None:
        break
      queue.remove(plan)
      pool.start(slot, plan)
      log.info("%s", prog.started(plan, f" on worker {slot}"))
    if not pool.running:
      break  # what is left waits for a stable run that stopped: the next sweep
    time.sleep(0.2)
    for plan, ending in pool.ended():
      if not _record(config, workdir, plan, ending, vocab, prog):
        _drop(plan, queue, prog)
        if ending[0] == run_files.FAILED:
          failed.append(plan.name)
  return failed, last


def run_sweep_in_workers(
  config,
  train_command: Sequence[str],
  workdir: str,
  workers: int,
  split: str = "cores",
  worker_command: Sequence[str] | None = None,
  cache_dir: str | None = None,
) -> list[dict[str, Any]]:
  """Trains the runs missing from the table on `workers` concurrent processes, appending each
  run's row when it finishes; returns the table. A failed run is reported with its log and
  stops the sweep after the others finish. A branch starts once its stable run has finished;
  with `scaling.lr_grid` the sweep trains in two rounds (`sweep.rounds`).

  Without `worker_command`, each run is a process of its own: `train_command` with the run's
  workdir and overrides (output in `<run>/train.log`). With it, each worker is one process,
  `worker_command` (an entry point that calls `serve` with the sweep's config and workdir),
  which trains the runs it is sent in turn; its own output goes to `<workdir>/worker<k>.log`.
  `cache_dir`: see `compile_cache.use`.
  """
  cache_env = compile_cache.use(cache_dir)
  sweep_tasks.start(config, workdir)
  pool = _Pool(workdir, workers, split, train_command, worker_command, cache_env)
  failed = []
  for _ in range(sweep.rounds(config)):
    failed, last = _train_round(config, workdir, pool)
    if failed or last:
      break
  pool.close()
  if failed:
    raise RuntimeError(f"runs failed: {', '.join(failed)}; their logs are in {workdir}")
  sweep_tasks.fill_missing(config, workdir)
  return results.read_results(workdir)
