"""Train a language model.

    python -m experiments.train --config=experiments/configs/shakespeare_char.py \
        --workdir=runs/shakespeare_char [--config.model.num_layers=6 ...]

Running again with the same workdir continues from its latest checkpoint.

As one of several processes (see launch/ and the README's "Scaling out"): add
`--coordinator_address=HOST:PORT --num_processes=N --process_id=I` (or set
`LM_COORDINATOR_ADDRESS`, `LM_NUM_PROCESSES`, `LM_PROCESS_ID`), or set `LM_DISTRIBUTED=auto` to
let JAX detect a TPU VM pod slice or a Slurm job.
"""

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from lm import config_checks, distributed, logs, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "HOST:PORT of process 0, for multi-process runs.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process' index, 0 to N-1.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  logs.quiet_libraries()
  if distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value):
    if jax.process_index() != 0:
      logging.set_verbosity(logging.WARNING)  # progress lines from process 0 only
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (config_checks.ConfigError, train.NonFiniteLossError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
