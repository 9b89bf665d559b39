"""TensorBoard reads the event files a run writes, with the steps replayed after a resume
purged. Skipped where tensorboard is not installed: it is the optional `tb` extra
(requirements-tb.lock, `make tensorboard`), never a requirement."""

import pytest

from lm.runs import metrics

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_tensorboard_reads_one_curve_after_a_resume(tmp_path):
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
