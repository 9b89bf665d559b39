"""Run files on gs:// workdirs, against an in-memory stand-in for GCS (`fake_gcs`, in
conftest.py) that, like GCS, cannot append to an object; and on a full disk (`small_disk`,
which other tests use too)."""

import builtins
import contextlib
import errno
import json
import os
import subprocess

import pytest
from etils import epath

from lm.data import hf_tokenizer
from lm.data import tokenizer as tokenizer_lib
from lm.runs import metrics, run_files
from lm.runtime import paths
from lm.training import checkpoint, experiment


def test_run_path_keeps_uris_and_makes_local_paths_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert str(paths.run_path("gs://b/run")) == "gs://b/run"
  assert str(paths.run_path("run")) == str(tmp_path / "run")
  assert paths.is_remote("s3://b/x") and not paths.is_remote("/tmp/gs://x")


def test_a_relative_data_dir_lies_in_the_user_cache_wherever_the_command_runs(
  tmp_path, monkeypatch
):
  from experiments.configs import base
  from lm.data import prepare, sources

  monkeypatch.setenv("LM_CACHE_DIR", str(tmp_path / "cache"))
  data = base.get_config().data
  for cwd in ("a", "b"):
    (tmp_path / cwd).mkdir()
    monkeypatch.chdir(tmp_path / cwd)
    data.data_dir = "data"
    assert str(prepare.data_root(data)) == sources.data_dir(data) == str(tmp_path / "cache/data")
  data.data_dir = str(tmp_path / "mine")
  assert str(prepare.data_root(data)) == sources.data_dir(data) == str(tmp_path / "mine")
  data.data_dir = "gs://b/data"
  assert str(prepare.data_root(data)) == sources.data_dir(data) == "gs://b/data"


def test_metrics_on_gcs_keep_every_row_across_a_resume(fake_gcs):
  writer = metrics.MetricWriter(fake_gcs)
  for step in (1, 2):
    writer.write(step, {"loss": 3.0 - step})
  writer.close()
  tb = epath.Path(f"{fake_gcs}/tb")
  first = sum(len(e.read_bytes()) for e in tb.glob("events.out.tfevents.*"))
  writer = metrics.MetricWriter(fake_gcs, resume_step=2)  # the run resumes from step 2
  writer.write(3, {"loss": 0.5})
  writer.close()
  rows = [
    json.loads(line)
    for line in epath.Path(f"{fake_gcs}/metrics.jsonl").read_text().split("\n")
    if line
  ]
  assert rows == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}, {"step": 3, "loss": 0.5}]
  # TensorBoard events: two records (one per scalar) per row, none lost by the second writer.
  assert first > 0
  assert sum(len(e.read_bytes()) for e in tb.glob("events.out.tfevents.*")) > first


def test_rewritten_file_uploads_at_most_every_interval(fake_gcs):
  f = paths.RewrittenFile(f"{fake_gcs}/log", min_interval_s=3600)
  f.write(b"a")
  f.flush()  # the first flush uploads
  f.write(b"b")
  f.flush()  # within the interval: kept in memory
  assert epath.Path(f"{fake_gcs}/log").read_bytes() == b"a"
  f.close()
  assert epath.Path(f"{fake_gcs}/log").read_bytes() == b"ab"


def test_run_files_and_tokenizers_round_trip_on_gcs(fake_gcs, tiny_config, tmp_path):
  tiny_config.mesh.data = -1
  built = experiment.build(tiny_config)
  run_files.write_run_files(fake_gcs, built.config, built.model_cfg, built.data.tokenizer)
  root = epath.Path(fake_gcs)
  assert json.loads((root / "model.json").read_text())["d_model"] == tiny_config.model.d_model
  assert json.loads((root / "config.json").read_text())["data"]["seq_len"] == 16
  loaded = tokenizer_lib.load_tokenizer(fake_gcs)
  assert loaded.encode("To be") == built.data.tokenizer.encode("To be")

  vocab = tmp_path / "bert"
  vocab.mkdir()
  (vocab / hf_tokenizer.VOCAB_TXT).write_text(
    "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "to", "be", "##s"]) + "\n"
  )
  local = hf_tokenizer.load(str(vocab))
  assert local is not None
  local.save(f"{fake_gcs}/bert")
  remote = tokenizer_lib.load_tokenizer(f"{fake_gcs}/bert")
  assert remote.encode("To bes") == local.encode("To bes") == [5, 6, 7]
  assert epath.Path(f"{fake_gcs}/bert/{hf_tokenizer.TOKENIZER_FILE}").exists()


def test_a_byte_level_bpe_trains_into_gcs(fake_gcs):
  trained = hf_tokenizer.train_byte_level_bpe(["to be, or not to be\n"] * 9, f"{fake_gcs}/bpe", 300)
  remote = tokenizer_lib.load_tokenizer(f"{fake_gcs}/bpe")
  assert remote.encode("not to be<|endoftext|>") == trained.encode("not to be<|endoftext|>")
  assert (remote.eos_id, remote.vocab_size) == (trained.eos_id, trained.vocab_size)


def test_checkpoint_manager_keeps_the_gcs_directory(fake_gcs, monkeypatch):
  # Orbax asks the real GCS API (google-cloud-storage) about the bucket's layout; the arrays
  # themselves go through TensorStore's own GCS driver, which no local stand-in reaches.
  from orbax.checkpoint._src.path import gcs_utils

  monkeypatch.setattr(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False)
  checkpoints = checkpoint.manager(fake_gcs, every=1, keep=1, use_async=False)
  assert str(checkpoints.directory) == f"{fake_gcs}/checkpoints"
  assert epath.Path(f"{fake_gcs}/checkpoints").exists()
  checkpoints.close()


class _NoSpaceLeft:
  """A file opened for writing on a full disk: it opens (and truncates), every write fails."""

  def __init__(self, file):
    self._file = file

  def write(self, data):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  def __getattr__(self, name):
    return getattr(self._file, name)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self._file.close()


def _mount(folder, size: str) -> bool:
  """Whether `folder` could be made a tmpfs of `size`: only root may mount."""
  folder.mkdir(parents=True, exist_ok=True)
  mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
  try:
    return subprocess.run(mount, capture_output=True, check=False).returncode == 0
  except OSError:  # no mount command
    return False


@contextlib.contextmanager
def tmpfs(folder, size: str):
  """`folder` as a tmpfs of `size` ('24k') while in the block; the test is skipped where
  `mount` is not allowed (a process that writes there cannot be given a stand-in)."""
  if not _mount(folder, size):
    pytest.skip("a small filesystem needs `mount` (root)")
  try:
    yield
  finally:
    subprocess.run(["umount", str(folder)], check=True)


@contextlib.contextmanager
def small_disk(folder, size: str):
  """`folder` on a filesystem of `size` ('8k'), and a function that fills it up: a tmpfs where
  `mount` is allowed, else a stand-in on which, once filled, every write to a file under
  `folder` fails with ENOSPC (files still open and truncate, as on a full disk)."""
  if _mount(folder, size):
    try:
      yield lambda: _fill(folder)
    finally:
      subprocess.run(["umount", str(folder)], check=True)
    return
  real_open = builtins.open

  def full_open(file, mode="r", *args, **kwargs):
    opened = real_open(file, mode, *args, **kwargs)
    inside = os.path.abspath(str(file)).startswith(f"{folder}/")
    return _NoSpaceLeft(opened) if inside and set(mode) & set("wax+") else opened

  with pytest.MonkeyPatch.context() as patch:
    yield lambda: patch.setattr(builtins, "open", full_open)


def _fill(folder) -> None:
  """Writes a file in `folder` until its filesystem is full."""
  with open(folder / ".filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
    while True:
      f.write(b"\0" * 4096)


def test_a_file_replaced_on_a_full_disk_stays_whole(tmp_path):
  folder = tmp_path / "disk"
  with small_disk(folder, "8k") as fill:
    paths.write_atomically(folder / "config.json", '{"old": 1}')
    fill()
    for write in (
      lambda: paths.write_atomically(folder / "config.json", json.dumps({"new": "x" * 9000})),
      lambda: paths.copy_file(tmp_path / "source", folder / "config.json"),
    ):
      (tmp_path / "source").write_text("y" * 9000)
      with pytest.raises(OSError) as failed:
        write()
      assert failed.value.errno == errno.ENOSPC
      assert json.loads((folder / "config.json").read_text()) == {"old": 1}
    assert sorted(p.name for p in folder.iterdir() if p.name != ".filler") == ["config.json"]
