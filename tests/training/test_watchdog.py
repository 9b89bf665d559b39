"""The watchdog names the step and what the loop waited on when it stops making progress."""

import threading

import jax
import pytest

from lm.runs import run_files
from lm.runtime import sharding
from lm.training import checkpoint, loop
from lm.training.watchdog import Watchdog


def test_the_watchdog_fires_once_after_the_last_beat():
  fired = []
  done = threading.Event()
  dog = Watchdog(0.2, on_stall=lambda m: (fired.append(m), done.set()))
  dog.beat("running step 7")
  assert done.wait(60)
  dog.stop()
  assert len(fired) == 1 and "while running step 7" in fired[0]
  assert "config.train.watchdog_s=0.2" in fired[0]


def test_a_stalled_checkpoint_save_is_named(tiny_config, tmp_path, monkeypatch):
  tiny_config.train.watchdog_s = 6  # far above a tiny step, even on a busy machine
  tiny_config.train.eval_every = 100  # no evaluation (and its compilation) before the stall
  released, messages = threading.Event(), []
  real_save = checkpoint.save

  def stalled_save(checkpoints, step, *args, **kwargs):
    if step == 4:
      released.wait(300)  # blocks, as a hung filesystem or barrier would, until the watchdog
      raise RuntimeError("released by the watchdog")
    return real_save(checkpoints, step, *args, **kwargs)

  def on_stall(message):
    messages.append(message)
    released.set()

  monkeypatch.setattr(checkpoint, "save", stalled_save)
  monkeypatch.setattr(loop, "Watchdog", lambda timeout_s, _: Watchdog(timeout_s, on_stall))
  with pytest.raises(RuntimeError, match="released by the watchdog"):
    loop.train_and_evaluate(
      tiny_config, str(tmp_path), sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
    )
  assert (
    messages == [messages[0]]
    and "while checking and saving the checkpoint of step 4" in messages[0]
  )


def test_a_stall_is_recorded_in_the_run_status_before_the_exit(tmp_path, monkeypatch):
  exits = []
  monkeypatch.setattr(loop, "exit_stalled", exits.append)
  loop.stall_handler(str(tmp_path))("watchdog: no progress for 7s while evaluating at step 4")
  status = run_files.read_status(str(tmp_path))
  assert status["status"] == run_files.STALLED and "while evaluating at step 4" in status["detail"]
  assert exits == ["watchdog: no progress for 7s while evaluating at step 4"]


def test_a_stall_exits_even_when_recording_it_hangs(tmp_path, monkeypatch):
  hung, exits = threading.Event(), []
  monkeypatch.setattr(run_files, "write_status", lambda *args, **kwargs: hung.wait(60))
  monkeypatch.setattr(loop, "exit_stalled", exits.append)
  loop.stall_handler(str(tmp_path), wait_s=0.2)("watchdog: stalled")
  hung.set()
  assert exits == ["watchdog: stalled"] and run_files.read_status(str(tmp_path)) is None
