"""Prepare a config's corpus: hold out its validation documents, train its tokenizer once and
write its token shards into config.data.data_dir (local or gs://), where every run and every
host then reads them. `experiments.train` does this on first use; run it yourself for a large
corpus, with workers or on a Beam cluster.

    python -m experiments.prepare_data --config=experiments/configs/scaling_cpu.py
    .venv-beam/bin/python -m experiments.prepare_data --config=C --workers=8   # on Beam
    python -m experiments.prepare_data --config=C --config.data.data_dir=gs://b/data \\
        --beam_pipeline_options="--runner=DataflowRunner --project=P --region=R \\
        --temp_location=gs://b/tmp --requirements_file=requirements-beam.lock \\
        --extra_package=dist/lm-0.1.0-py3-none-any.whl"   # pip wheel --no-deps -w dist .
"""

import json
import sys

from absl import flags, logging
from ml_collections import config_flags

from lm import cli, logs
from lm.data import token_cache
from lm.data.engine import EngineError
from lm.data.local_text import DataError
from lm.training import config_checks

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_WORKERS = flags.DEFINE_integer(
  "workers", 1, "Worker processes (Beam's multi-processing DirectRunner above 1)."
)
_BEAM = flags.DEFINE_string(
  "beam_pipeline_options",
  "",
  "Apache Beam pipeline flags (e.g. --runner=DataflowRunner ...); they replace --workers.",
)


def main(argv):
  del argv
  logging.set_verbosity(max(logging.get_verbosity(), logging.INFO))  # a raised --verbosity stays
  logs.quiet_libraries()
  try:
    data = token_cache.tokenized_data(
      _CONFIG.value.data, workers=_WORKERS.value, beam_options=_BEAM.value
    )
  except KeyboardInterrupt:
    print("interrupted: the same command resumes at the first unfinished shard", file=sys.stderr)
    sys.exit(130)
  print(json.dumps({"directory": data.directory, **data.manifest}, indent=1))


def run() -> None:
  """The `lm-prepare-data` command."""
  flags.mark_flag_as_required("config")
  cli.run(
    cli.one_line_errors(
      main, (config_checks.ConfigError, DataError, EngineError, FileNotFoundError)
    ),
    __name__,
    cli.parse_flags,
  )


if __name__ == "__main__":
  run()
