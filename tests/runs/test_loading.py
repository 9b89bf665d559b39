"""A trained run read back (what sample and evaluate load): past a newest checkpoint that does
not restore or does not match its checksums, as training resumes, but with nothing moved."""

import logging
import os
import subprocess
import sys

import jax
import pytest

from conftest import REPO
from lm.runs import loading
from lm.runtime import sharding
from lm.training import checkpoint, loop
from tests.training.test_checkpoint import overwrite_array_bytes


def test_a_run_is_read_back_from_its_newest_checkpoint_that_restores(tiny_config, tmp_path, caplog):
  tiny_config.train.checkpoint_every = 4
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  loop.train_and_evaluate(tiny_config, str(tmp_path), mesh)
  ckpts = tmp_path / "checkpoints"
  overwrite_array_bytes(ckpts / "8")
  with caplog.at_level(logging.WARNING):
    assert loading.load_run(str(tmp_path)).step == 4
  warned = [r.getMessage() for r in caplog.records if "does not restore" in r.getMessage()]
  assert len(warned) == 1 and warned[0].startswith("checkpoint step 8 does not restore ("), warned
  assert warned[0].endswith("does not match the checksum saved with it); using step 4"), warned
  assert sorted(p.name for p in ckpts.iterdir()) == ["4", "8"]  # only read: nothing moved
  assert not (tmp_path / checkpoint.UNREADABLE).exists()
  with pytest.raises(
    checkpoint.NoCheckpointRestores,
    match=r"^checkpoint step 8 in .* does not restore: .* does not match the checksum",
  ):
    loading.load_run(str(tmp_path), 8)

  # When none restores, the tools end in one line that names each step and why.
  (ckpts / "4" / "state" / "manifest.ocdbt").write_bytes(b"")
  env = dict(os.environ, PYTHONPATH=REPO)
  env.pop("XLA_FLAGS")
  out = subprocess.run(
    [sys.executable, "-m", "experiments.evaluate", f"--workdir={tmp_path}"],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: no checkpoint in {ckpts} restores: step 8: "), last
  assert "does not match the checksum saved with it; step 4: DATA_LOSS: " in last, last
