"""Train a language model.

    python -m experiments.train --config=experiments/configs/shakespeare_char.py \
        --workdir=runs/shakespeare_char [--config.model.num_layers=6 ...]

Running again with the same workdir continues from its latest checkpoint.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lm import config_checks, logs, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  logs.quiet_libraries()
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (config_checks.ConfigError, train.NonFiniteLossError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
