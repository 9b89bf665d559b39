"""Run an IsoFLOP scaling sweep: every grid point of `config.scaling`.

    python -m experiments.sweep --config=experiments/configs/scaling_cpu.py --workdir=runs/scaling

Runs train in sequence in this process, or with `--workers=N` on N concurrent worker
processes, each on its share of the CPU cores (`--worker_split=cores`: many small models on
a multi-core machine) or on one GPU each (`--worker_split=gpus`). A worker trains run after run
in one process (`--noreuse_workers`: a fresh `experiments.train` process per run, which pays
the imports, JAX's start and the data's setup each time).

The sweep logs its plan first (runs pending and done, training FLOPs under the plan's
convention, an estimated time, one line per run), then "run k of N" as each starts and the
sweep's ETA as each finishes. The plan and its conventions are saved in `<workdir>/sweep.json`
(fit_scaling reads them).

Each run trains in `<workdir>/<name>` (its loss curve in its metrics.jsonl) and adds a row to
`<workdir>/results.csv` and `results.jsonl`. With `--config.scaling.method=cooldown` each size
trains once at a constant learning rate (`stable_L<layers>_d<width>`) and each grid point is a
short cooldown branched from it (`<name>_cooldown`), which adds the row. With
`--config.scaling.lr_grid='(0.5,1,2)'` each size first tries those multiples of its learning
rate (rows in `<workdir>/lr_trials.jsonl`, the choice in `lr_choice.json`), then trains at the
best. With `--config.scaling.noise_sizes='("L4_d16",)' --config.scaling.noise_seeds='(1,2)'`
those sizes' grid points train again with each seed (`<name>_seed<s>`, rows in
`<workdir>/seed_repeats.jsonl`: lm/scaling/noise.py). Running again resumes an interrupted run
and skips finished ones. `--emit_commands` prints one `python -m experiments.train` command per
run instead (the independent method without learning-rate trials); running the sweep afterwards
collects their rows.

`--launcher=slurm` hands the round to Slurm instead (launch/slurm_sweep.py): job arrays of
`--run=NAME` tasks (each trains one run of the plan and adds its row), a branch after its stable
run's task, a job after the learning-rate trials that runs this command again for the next
round; `--dry_run` prints the scripts. The same command again submits only what is missing;
`--status` prints the runs done, running, queued and failed and an ETA.

After `python -m experiments.fit_scaling --results=<workdir>/results.csv --predict_flops=C`,
`--verify` trains the family member nearest the predicted N_opt on the tokens that spend C, by
the sweep's method and learning rates (lm/scaling/verify.py), in this process; its run is
skipped once done, and `<workdir>/verification.json` compares its eval loss, N, D and C with
the prediction (fit_scaling then prints and plots it).
"""

import os
import sys

from absl import flags, logging
from ml_collections import config_flags

from launch import slurm_jobs, slurm_status, slurm_sweep
from lm import cli, logs
from lm.scaling import results, sweep, verify, workers
from lm.training import config_checks, exit_status, loop

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "A scaling config file, e.g. experiments/configs/scaling_cpu.py; every "
  "field, its default and what it does: experiments/configs/base.py.",
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Directory for the runs and the results table.", required=True
)
_WORKERS = flags.DEFINE_integer("workers", 1, "Concurrent training processes (1: in process).")
_SPLIT = flags.DEFINE_enum(
  "worker_split",
  "cores",
  ["cores", "gpus"],
  "What each worker gets: a share of the CPU cores, or one GPU.",
)
_REUSE = flags.DEFINE_bool(
  "reuse_workers",
  True,
  "With --workers: each worker process trains several runs in turn (else one process per run).",
)
_SERVE = flags.DEFINE_bool(
  "serve",
  False,
  "Be a reusable worker: train the runs named on stdin "
  "(one a line), answer each on stdout (started by --workers).",
)
_CACHE = flags.DEFINE_string(
  "compilation_cache",
  "jax_cache",
  "JAX's persistent compilation cache for the runs, relative to --workdir ('': none).",
)
_EMIT = flags.DEFINE_bool("emit_commands", False, "Print one train command per run and exit.")
_VERIFY = flags.DEFINE_bool(
  "verify",
  False,
  "Train the model that <workdir>/fit.json predicts "
  "(experiments.fit_scaling --predict_flops=C) at that compute, in "
  "this process (with --launcher=slurm: as one Slurm job), and compare "
  "(<workdir>/verification.json).",
)
_LAUNCHER = flags.DEFINE_enum(
  "launcher",
  "local",
  ["local", "slurm"],
  "Where the runs train: here ('local': in this process or --workers), or as Slurm job arrays "
  "of this sweep's round, submitted by this command (launch/slurm_sweep.py).",
)
_SLURM = flags.DEFINE_multi_string(
  "slurm",
  [],
  "With --launcher=slurm: a flag of launch.slurm for the jobs, e.g. --slurm=--partition=gpu "
  "--slurm=--time=04:00:00 (repeat it). Each task is one process on --gpus_per_node GPUs "
  "(default 1).",
)
_DRY_RUN = flags.DEFINE_bool(
  "dry_run", False, "With --launcher=slurm: print the round's batch scripts, submit nothing."
)
_RUN = flags.DEFINE_string(
  "run",
  None,
  "Train this run of the sweep's plan alone, in this process, and add its row (a "
  "scheduler's task); exits 75 where it stopped early (run it again to resume).",
)
_STATUS = flags.DEFINE_bool(
  "status",
  False,
  "Print the sweep's runs done, running, queued and failed (the table, squeue and sacct) "
  "and an ETA, and exit.",
)
flags.mark_flags_as_required(["config"])


def _slurm(config, path: str, overrides: list[str]) -> list[str]:
  """--launcher=slurm (and --status): submits the round, or the verification, or says where the
  sweep stands; returns the lines to print."""
  workdir = os.path.abspath(_WORKDIR.value)  # the tasks start in the repository
  args = slurm_sweep.slurm_args(_SLURM.value, workdir)
  if _STATUS.value:
    return slurm_status.status_lines(config, workdir, slurm_jobs.job_name(args.job_name, workdir))
  launch = slurm_sweep.Launch(
    slurm_args=args,
    sweep_args=(
      f"--config={path}",
      *overrides,
      f"--workdir={workdir}",
      f"--compilation_cache={_CACHE.value}",
    ),
    planner_flags=(
      "--launcher=slurm",
      *(f"--slurm={f}" for f in _SLURM.value),
      f"--workers={_WORKERS.value}",
    ),
  )
  if _VERIFY.value:
    return slurm_sweep.submit_verification(config, workdir, launch, _DRY_RUN.value)
  return slurm_sweep.submit_round(config, workdir, launch, _WORKERS.value, _DRY_RUN.value)


def main(argv):
  del argv
  logging.set_verbosity(max(logging.get_verbosity(), logging.INFO))  # a raised --verbosity stays
  logs.quiet_libraries()
  path = config_flags.get_config_filename(flags.FLAGS["config"])
  overrides = [a for a in sys.argv[1:] if a.startswith("--config.")]
  entry = ["-m", "experiments.train", f"--config={path}", *overrides]
  if (_DRY_RUN.value or _SLURM.value) and _LAUNCHER.value != "slurm" and not _STATUS.value:
    sys.exit("error: --dry_run and --slurm go with --launcher=slurm: add it")
  if _EMIT.value:
    try:
      print("\n".join(sweep.commands(_CONFIG.value, ["python", *entry], _WORKDIR.value)))
    except ValueError as e:
      sys.exit(f"error: {e}")
    return
  if _SERVE.value:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed goes to the log, not between the replies
    cli.quiet_background_failures()
    sys.exit(workers.serve(_CONFIG.value, _WORKDIR.value, sys.stdin, replies))
  cache = _CACHE.value and os.path.join(_WORKDIR.value, _CACHE.value)
  try:
    if _RUN.value:
      finished = sweep.train_run(_CONFIG.value, _WORKDIR.value, _RUN.value, cache_dir=cache)
      sys.exit(0 if finished else exit_status.PREEMPTED)
    if _LAUNCHER.value == "slurm" or _STATUS.value:
      print("\n".join(_slurm(_CONFIG.value, path, overrides)))
      return
    if _VERIFY.value:
      verification = sweep.run_verification(_CONFIG.value, _WORKDIR.value, cache_dir=cache)
      if verification:
        print(verify.format_verification(verification))
      return
    if _WORKERS.value > 1:
      worker = [
        sys.executable,
        "-m",
        "experiments.sweep",
        f"--config={path}",
        *overrides,
        f"--workdir={_WORKDIR.value}",
        "--serve",
      ]
      rows = workers.run_sweep_in_workers(
        _CONFIG.value,
        [sys.executable, *entry],
        _WORKDIR.value,
        _WORKERS.value,
        _SPLIT.value,
        worker if _REUSE.value else None,
        cache,
      )
    else:
      rows = sweep.run_sweep(_CONFIG.value, _WORKDIR.value, cache_dir=cache)
  except (config_checks.ConfigError, loop.NonFiniteLossError, RuntimeError, ValueError) as e:
    sys.exit(f"error: {e}")
  logging.info("%d runs in %s/%s", len(rows), _WORKDIR.value, results.RESULTS_CSV)


def run() -> None:
  """The `lm-sweep` command."""
  cli.run(main, __name__, cli.parse_flags)


if __name__ == "__main__":
  run()
