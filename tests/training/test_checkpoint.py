"""Resuming past a corrupt or partial newest checkpoint."""

import logging

import jax
import numpy as np
import pytest

from lm.runs import metrics
from lm.runtime import sharding
from lm.training import checkpoint, loop


def _run(config, workdir):
  return loop.train_and_evaluate(
    config, str(workdir), sharding.make_mesh(config.mesh, jax.devices()[:1])
  )


def test_resume_falls_back_to_the_newest_checkpoint_that_restores(tiny_config, tmp_path, caplog):
  tiny_config.train.checkpoint_every = 2
  tiny_config.train.keep_checkpoints = -1
  straight = _run(tiny_config, tmp_path)
  straight_params = sharding.host_copy(straight["state"].params)
  ckpts = tmp_path / "checkpoints"
  assert sorted(int(p.name) for p in ckpts.iterdir()) == [2, 4, 6, 8]
  for path in (ckpts / "8").rglob("*"):  # step 8: an empty folder, as a save cut short leaves
    if path.is_file():
      path.unlink()
  with open(ckpts / "6" / "state" / "manifest.ocdbt", "r+b") as f:  # step 6: a truncated file
    f.truncate(10)
  with caplog.at_level(logging.WARNING):
    resumed = _run(tiny_config, tmp_path)
  assert resumed["start_step"] == 4 and resumed["step"] == 8
  skipped = [r.getMessage() for r in caplog.records if "does not restore" in r.getMessage()]
  assert len(skipped) == 2 and all("resuming from step 4" in m for m in skipped), skipped
  assert "checkpoint step 8 does not restore" in skipped[0]
  kept = tmp_path / checkpoint.UNREADABLE
  assert sorted(p.name for p in kept.iterdir()) == ["6", "8"]  # moved aside, not deleted
  jax.tree.map(
    np.testing.assert_array_equal, sharding.host_copy(resumed["state"].params), straight_params
  )
  # The replayed steps 5-8 are logged once: metrics.jsonl stays one curve.
  steps = [row["step"] for row in metrics.read_metrics(str(tmp_path)) if "loss" in row]
  assert steps == list(range(1, 9))

  # When no checkpoint restores, one error names each step and why, and nothing is moved.
  for step in (2, 4, 6, 8):
    (ckpts / str(step) / "state" / "manifest.ocdbt").write_bytes(b"")
  with pytest.raises(
    checkpoint.NoCheckpointRestores,
    match=r"no checkpoint in .* restores: step 8: DATA_LOSS: .* manifest",
  ) as e:
    _run(tiny_config, tmp_path)
  assert "step 2: " in str(e.value) and len(str(e.value)) < 1200
  assert sorted(int(p.name) for p in ckpts.iterdir()) == [2, 4, 6, 8]
