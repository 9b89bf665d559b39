"""The event files a run writes: each row on disk as it is logged (a killed run keeps its
curve), and read by TensorBoard with the steps replayed after a resume purged. The TensorBoard
test is skipped where tensorboard is not installed: it is the optional `tb` extra
(requirements-tb.lock, `make tensorboard`), never a requirement."""

import struct

import pytest

from lm.runs import metrics


def _scalars_on_disk(folder) -> list[tuple[int, str, float]]:
  """(step, tag, value) of every scalar in the event files of `folder`, read from disk as
  another process would (TFRecords: length, its CRC, the event, its CRC)."""
  found = []
  for path in sorted(folder.glob("events.out.tfevents.*")):
    data, at = path.read_bytes(), 0
    while at < len(data):
      (length,) = struct.unpack("<Q", data[at : at + 8])
      event = metrics.event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
      at += 16 + length
      found += [(event.step, v.tag, round(v.simple_value, 6)) for v in event.summary.value]
  return found


def test_each_row_is_in_the_event_file_before_the_writer_is_closed(tmp_path):
  writer = metrics.MetricWriter(str(tmp_path))
  writer.write(1, {"loss": 4.5, "lr": 1e-3})
  assert _scalars_on_disk(tmp_path / "tb") == [(1, "loss", 4.5), (1, "lr", 0.001)]
  writer.write(2, {"eval_loss": 4.25})
  assert _scalars_on_disk(tmp_path / "tb")[-1] == (2, "eval_loss", 4.25)
  writer.close()


def test_tensorboard_reads_one_curve_after_a_resume(tmp_path):
  event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
  writer = metrics.MetricWriter(str(tmp_path))
  for step in range(1, 7):
    writer.write(step, {"loss": 10.0 - step, "lr": 1e-3})
    if step % 2 == 0:
      writer.write(step, {"eval_loss": 10.5 - step})
  writer.close()
  # A restart from the checkpoint of step 3 replays steps 4-6 (here with other losses).
  writer = metrics.MetricWriter(str(tmp_path), resume_step=3)
  for step in range(4, 6):
    writer.write(step, {"loss": 20.0 + step, "lr": 1e-3})
  writer.close()

  events = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
  events.Reload()
  assert sorted(events.Tags()["scalars"]) == ["eval_loss", "loss", "lr"]
  assert [(e.step, e.value) for e in events.Scalars("loss")] == [
    (1, 9.0),
    (2, 8.0),
    (3, 7.0),
    (4, 24.0),
    (5, 25.0),
  ]
  # The evaluations of steps 4 and 6 were replayed (step 4's again later), so purged.
  assert [(e.step, e.value) for e in events.Scalars("eval_loss")] == [(2, 8.5)]
