"""Resuming past a corrupt or partial newest checkpoint."""

import json
import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lm.runs import metrics
from lm.runtime import sharding
from lm.training import checkpoint, checksums, loop


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


def _plain_restore(step_dir) -> list[np.ndarray] | None:
  """The arrays of a checkpoint as Orbax alone restores them (None if it fails)."""
  try:
    state = ocp.StandardCheckpointer().restore(step_dir / "state")
  except Exception:
    return None
  return [np.asarray(checksums.plain(x)) for x in jax.tree.leaves(state)]


def overwrite_array_bytes(step_dir, count: int = 300) -> None:
  """Overwrites `count` bytes inside the largest array file of a checkpoint (its OCDBT data,
  not a manifest; the file keeps its size, as a bad disk or copy leaves it), where Orbax alone
  still restores it without error, with other values: what only the checksums catch."""
  files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
  data = max(files, key=lambda p: p.stat().st_size)
  original, before = data.read_bytes(), _plain_restore(step_dir)
  assert before is not None
  for offset in range(len(original) // 2, len(original) - count, 997):
    data.write_bytes(original[:offset] + b"\x7f" * count + original[offset + count :])
    after = _plain_restore(step_dir)
    if after is not None and any(not np.array_equal(a, b) for a, b in zip(before, after)):
      return
  raise AssertionError(f"no {count} bytes of {data} change its values without an error")


def test_changed_bytes_in_the_newest_checkpoint_fall_back_to_the_previous(
  tiny_config, tmp_path, caplog
):
  tiny_config.train.checkpoint_every = 4
  straight = _run(tiny_config, tmp_path)
  overwrite_array_bytes(tmp_path / "checkpoints" / "8")
  with caplog.at_level(logging.WARNING):
    resumed = _run(tiny_config, tmp_path)
  assert resumed["start_step"] == 4 and resumed["step"] == 8
  skipped = [r.getMessage() for r in caplog.records if "does not restore" in r.getMessage()]
  assert len(skipped) == 1 and "checkpoint step 8 does not restore (" in skipped[0], skipped
  assert "does not match the checksum saved with it" in skipped[0], skipped
  assert "resuming from step 4" in skipped[0]
  assert sorted(p.name for p in (tmp_path / checkpoint.UNREADABLE).iterdir()) == ["8"]
  # Trained on from step 4 as the straight run did: bitwise the same parameters.
  jax.tree.map(
    np.testing.assert_array_equal,
    sharding.host_copy(resumed["state"].params),
    sharding.host_copy(straight["state"].params),
  )
  assert resumed["train_loss"] == straight["train_loss"]


def test_checksums_missing_from_a_checkpoint_saved_with_them_fall_back(
  tiny_config, tmp_path, caplog
):
  tiny_config.train.checkpoint_every = 4
  _run(tiny_config, tmp_path)
  newest = tmp_path / "checkpoints" / "8"
  shutil.rmtree(newest / checksums.ITEM)  # its step metadata still names the item
  with caplog.at_level(logging.WARNING):
    assert _run(tiny_config, tmp_path)["start_step"] == 4
  assert "checkpoint step 8 does not restore (its checksums (checksums/) are missing)" in (
    caplog.text
  )

  # A checkpoint saved before checksums were recorded restores as it did, unchecked.
  shutil.rmtree(newest / checksums.ITEM)
  metadata = json.loads((newest / "_CHECKPOINT_METADATA").read_text())
  del metadata["item_handlers"][checksums.ITEM]
  (newest / "_CHECKPOINT_METADATA").write_text(json.dumps(metadata))
  caplog.clear()
  with caplog.at_level(logging.DEBUG, logger=checkpoint.__name__):
    assert _run(tiny_config, tmp_path)["start_step"] == 8
  assert "checkpoint step 8 has no checksums (saved before they were recorded)" in caplog.text
  assert "does not restore" not in caplog.text


@pytest.mark.parametrize("saved, restored", [(2, 8), (8, 1)])  # a finer layout, and one device
def test_every_shard_is_checked_in_another_layout(tmp_path, saved, restored):
  def layout(n):
    return NamedSharding(Mesh(np.array(jax.devices()[:n]), ("x",)), PartitionSpec("x"))

  w = jax.device_put(jnp.arange(16 * 8, dtype=jnp.float32).reshape(16, 8), layout(saved))
  checkpoints = checkpoint.manager(str(tmp_path), every=1, keep=-1, use_async=False)
  checkpoint.save(checkpoints, 1, {"w": w}, {"position": 5}, force=True)
  abstract = {"w": jax.ShapeDtypeStruct(w.shape, w.dtype, sharding=layout(restored))}
  state, data = checkpoint.restore(checkpoints, abstract, 1)
  np.testing.assert_array_equal(state["w"], w)
  assert data == {"position": 5}
  record = tmp_path / "checkpoints" / "1" / checksums.ITEM / "process_0.json"
  saved_record = json.loads(record.read_text())
  for shard in range(saved):  # each saved shard, changed alone, is caught
    changed = json.loads(record.read_text())
    changed["arrays"]["['w']"]["shards"][shard][1] ^= 1
    record.write_text(json.dumps(changed))
    start, stop = changed["arrays"]["['w']"]["shards"][shard][0][0]
    with pytest.raises(
      checkpoint.NoCheckpointRestores,
      match=rf"state\['w'\] \[{start}:{stop}, 0:8\] does not match the checksum saved with it",
    ):
      checkpoint.restore(checkpoints, abstract, 1)
    record.write_text(json.dumps(saved_record))
