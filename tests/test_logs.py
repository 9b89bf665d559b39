"""A run's output holds our lines; the libraries' chatter (their INFO lines, what TFDS prints,
progress bars) only with absl's --verbosity raised."""

import logging

import jax
import pytest
from absl import logging as absl_logging

from lm import logs
from lm.data import sources
from lm.runtime import sharding
from lm.training import loop
from tests.data.tiny_tfds import TinyCorpus

CHATTER = ("Downloading and preparing dataset", "Generating splits", "\r", "\x1b[")


def _kept(handler: logging.Handler, pathname: str, level: int) -> bool:
  record = logging.LogRecord("x", level, pathname, 1, "a line", None, None)
  return all(f.filter(record) for f in handler.filters)


@pytest.mark.parametrize("verbosity", [absl_logging.INFO, absl_logging.DEBUG])
def test_library_info_lines_only_with_verbosity_raised(verbosity, monkeypatch):
  monkeypatch.setattr(absl_logging, "get_verbosity", lambda: verbosity)
  handler = logging.NullHandler()
  logs.quiet_libraries(handler)
  library = "/venv/site-packages/orbax/checkpoint/manager.py"
  assert _kept(handler, "/repo/lm/training/loop.py", logging.INFO)
  assert _kept(handler, library, logging.WARNING)
  assert _kept(handler, library, logging.INFO) == (verbosity == absl_logging.DEBUG)


def test_a_tfds_run_prints_no_library_chatter(tiny_config, tmp_path, capfd, monkeypatch):
  monkeypatch.setattr(sources, "check_dataset_name", lambda name: None)
  assert TinyCorpus.name == "tiny_corpus"  # registered by its module
  tiny_config.data.update(dataset="tiny_corpus", text_key="sentence", batch_size=3)
  tiny_config.train.steps = 2
  tiny_config.optim.warmup_steps = 1
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  assert loop.train_and_evaluate(tiny_config, str(tmp_path / "run"), mesh)["step"] == 2
  out, err = capfd.readouterr()
  assert [c for c in CHATTER if c in out + err] == [], out + err
