"""Train a language model.

    python -m experiments.train --config=experiments/configs/shakespeare_char.py \\
        --workdir=runs/shakespeare_char [--config.model.num_layers=6 ...]
    python -m experiments.train --config=experiments/configs/llama_style.py --print_config

Running again with the same workdir continues from its newest checkpoint that restores; a
config that changes what the run trains (steps, schedule, data, ...) is refused unless
`--allow_config_change` (the new config becomes the run's config.json; config_history.jsonl
records the step and the fields changed).
Exit status: 0 finished; 75 preempted (SIGTERM, SIGINT or `train.stop_after_steps`: a
checkpoint was saved, run the same command to resume); 124 the watchdog saw no progress for
`train.watchdog_s` seconds; 1 an error, in one `error:` line where it is expected (a bad config
or input, a non-finite loss, a full disk).

As one of several processes (see launch/ and docs/scaling-out.md): add
`--coordinator_address=HOST:PORT --num_processes=N --process_id=I` (or set
`LM_COORDINATOR_ADDRESS`, `LM_NUM_PROCESSES`, `LM_PROCESS_ID`), or set `LM_DISTRIBUTED=auto` to
let JAX detect a TPU VM pod slice or a Slurm job.
"""

from lm.training import early_signals

early_signals.remember()  # before the imports: a SIGTERM from now on stops the run as preempted

import sys

import jax
from absl import flags, logging
from ml_collections import config_flags

from lm import cli, logs
from lm.data.local_text import DataError
from lm.runtime import compile_cache, distributed
from lm.training import checkpoint, config_checks, exit_status, loop, optim

_CONFIG = config_flags.DEFINE_config_file("config", None, cli.CONFIG_HELP, lock_config=True)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Directory for checkpoints and metrics (required unless --print_config)."
)
_PRINT_CONFIG = flags.DEFINE_bool(
  "print_config",
  False,
  "Print the config a run would train with (after the overrides and the config checks), as "
  "the run's config.json would hold it, and exit without training.",
)
_COORDINATOR = flags.DEFINE_string(
  "coordinator_address", None, "HOST:PORT of process 0, for multi-process runs."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process' index, 0 to N-1.")
_ALLOW_CHANGE = flags.DEFINE_bool(
  "allow_config_change",
  False,
  "Resume a run in --workdir with settings that differ from its "
  "config.json (e.g. more train.steps); without it such a resume is refused.",
)
_CACHE = flags.DEFINE_string(
  "compilation_cache",
  None,
  "JAX's persistent compilation cache: a folder where compiled "
  "programs are kept for the next run of the same shapes (default: $LM_CACHE_DIR/jax, else "
  "~/.cache/lm/jax; '': none).",
)
flags.mark_flag_as_required("config")
flags.register_multi_flags_validator(
  ["workdir", "print_config"],
  lambda values: values["workdir"] is not None or values["print_config"],
  "--workdir is required (except with --print_config)",
)


def print_config(config) -> None:
  """Prints `config` as a run would save it in config.json, after the config checks and with
  the warnings a run would log."""
  config_checks.check(config, jax.device_count(), jax.process_count())
  warning = optim.learning_rate_warning(config.optim)
  if warning:
    print(f"warning: {warning}", file=sys.stderr)
  print(config.to_json_best_effort(indent=2))


def main(argv):
  del argv
  logging.set_verbosity(max(logging.get_verbosity(), logging.INFO))  # a raised --verbosity stays
  logs.quiet_libraries()
  if _PRINT_CONFIG.value or _WORKDIR.value is None:  # None only with --print_config
    print_config(_CONFIG.value)
    return
  compile_cache.use(compile_cache.default_dir() if _CACHE.value is None else _CACHE.value)
  several = distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if several and jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)  # progress lines from process 0 only
  summary = loop.train_and_evaluate(
    _CONFIG.value, _WORKDIR.value, allow_config_change=_ALLOW_CHANGE.value
  )
  if summary["preempted"] is not None:
    print(
      f"preempted at step {summary['step']} ({summary['preempted']}): resume with the same command",
      file=sys.stderr,
    )
    sys.exit(exit_status.PREEMPTED)


def run() -> None:
  """The `lm-train` command."""
  cli.run(
    cli.one_line_errors(
      main,
      (
        config_checks.ConfigError,
        DataError,
        loop.NonFiniteLossError,
        checkpoint.NoCheckpointRestores,
      ),
      where=lambda: _WORKDIR.value,
    ),
    __name__,
    cli.parse_flags,
  )


if __name__ == "__main__":
  run()
