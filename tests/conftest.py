"""Test setup: 8 forced CPU devices, a compilation cache, and a tiny config on a small slice of
the corpus."""

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from typing import ClassVar

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the session (and the processes its tests start): the
# same tiny programs are compiled by dozens of tests, which then load them (~40% of the suite).
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _OWN_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(
    prefix="lm-tests-jax-cache-"
  )
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

# The CPU's MFU peak is measured once per machine and cached: in a folder of the session's.
_OWN_PEAK_CACHE = None
if "LM_CACHE_DIR" not in os.environ:
  _OWN_PEAK_CACHE = os.environ["LM_CACHE_DIR"] = tempfile.mkdtemp(prefix="lm-tests-cache-")

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from experiments.configs import base

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "data", "tiny_shakespeare.txt")


def run_module(
  module: str, *args: str, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
  """`python -m module args` from the repository on one CPU device (this process's XLA_FLAGS
  of 8 host devices left out), with `env` added; its output captured, its exit status kept."""
  full_env = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
  full_env.pop("XLA_FLAGS", None)
  return subprocess.run(
    [sys.executable, "-m", module, *args],
    cwd=REPO,
    env=full_env,
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )


def config_flags(config, skip: tuple[str, ...] = ()) -> list[str]:
  """`--config.a.b=v` for every field where `config` differs from the base config (fields
  under a prefix in `skip` left out): the command line that rebuilds `config` from base.py."""

  def flat(d, prefix=""):
    for k, v in d.items():
      if isinstance(v, dict):
        yield from flat(v, f"{prefix}{k}.")
      else:
        yield f"{prefix}{k}", v

  defaults = dict(flat(base.get_config().to_dict()))
  return [
    f"--config.{k}={v}"
    for k, v in flat(config.to_dict())
    if defaults[k] != v and not k.startswith(skip)
  ]


def write_corpus(directory) -> str:
  """The first 20k characters of tiny Shakespeare, as `directory`/corpus.txt."""
  path = directory / "corpus.txt"
  with open(CORPUS) as f:
    path.write_text(f.read(20_000))
  return str(path)


def make_tiny_config(directory, corpus: str):
  """A 2-layer width-32 decoder on `corpus`, 8 steps, its data cache in `directory`/data."""
  c = base.get_config()
  c.data.path = corpus
  c.data.data_dir = str(directory / "data")
  c.data.seq_len = 16
  c.model.max_seq_len = 16
  c.data.batch_size = 8
  c.data.num_threads = 1
  c.data.prefetch = 2
  c.model.num_layers = 2
  c.model.num_heads = 4
  c.model.d_model = 32
  c.model.dropout = 0.1
  c.optim.warmup_steps = 2
  c.train.steps = 8
  c.train.log_every = 1
  c.train.eval_every = 4
  c.train.eval_batches = 2
  c.train.checkpoint_every = 4
  c.train.async_checkpoints = False
  c.mesh.data = 1
  return c


@pytest.fixture
def corpus_file(tmp_path):
  return write_corpus(tmp_path)


@pytest.fixture
def tiny_config(tmp_path, corpus_file):
  return make_tiny_config(tmp_path, corpus_file)


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  for own in (_OWN_CACHE, _OWN_PEAK_CACHE):
    if own:
      shutil.rmtree(own, ignore_errors=True)


class FakeGCS(MemoryFileSystem):
  """gs:// paths in memory; opening an object for append fails as on GCS."""

  protocol = ("gs", "gcs")
  store: ClassVar[dict] = {}
  pseudo_dirs: ClassVar[list[str]] = [""]

  def __init__(self, *args, finalize_on_close: bool = True, **kwargs):
    del finalize_on_close  # gcsfs's option, passed by etils
    super().__init__(*args, **kwargs)

  @classmethod
  def _strip_protocol(cls, path):
    path = str(path)
    for prefix in ("gs://", "gcs://"):
      if path.startswith(prefix):
        path = path[len(prefix) :]
    return super()._strip_protocol(path)

  def _open(self, path, mode="rb", **kwargs):
    if "a" in mode:
      raise NotImplementedError("GCS objects cannot be appended to")
    return super()._open(path, mode, **kwargs)


@pytest.fixture
def fake_gcs(monkeypatch):
  """gs:// routed to a fresh FakeGCS until the test ends; yields a gs:// workdir."""
  fsspec_registry = importlib.import_module("fsspec.registry")  # the module, not fsspec.registry
  from etils.epath import backend

  monkeypatch.setattr(FakeGCS, "store", {})
  monkeypatch.setattr(FakeGCS, "pseudo_dirs", [""])
  for name in ("gs", "gcs"):
    monkeypatch.setitem(fsspec_registry._registry, name, FakeGCS)
  backend.fsspec_backend._get_filesystem.cache_clear()
  yield "gs://bucket/run"
  backend.fsspec_backend._get_filesystem.cache_clear()
