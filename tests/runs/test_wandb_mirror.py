"""The optional W&B mirror, in offline mode (no network, no account). Skipped where wandb is not
installed: it is an optional extra (`pip install '.[wandb]'`), never a requirement."""

import jax
import pytest

from lm.runtime import sharding
from lm.training import loop

wandb = pytest.importorskip("wandb")


def test_an_offline_run_gets_every_row_and_a_restart_resumes_it(tiny_config, tmp_path, monkeypatch):
  monkeypatch.setenv("WANDB_SILENT", "true")
  logged = []
  real_log = wandb.Run.log
  monkeypatch.setattr(
    wandb.Run,
    "log",
    lambda self, data, step=None, **kw: (
      logged.append((step, dict(data))),
      real_log(self, data, step=step, **kw),
    )[1],
  )
  tiny_config.train.wandb_project, tiny_config.train.wandb_mode = "lm-tests", "offline"
  tiny_config.train.stop_after_steps = 4
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  assert loop.train_and_evaluate(tiny_config, str(tmp_path), mesh)["preempted"]
  run_id = (tmp_path / "wandb_id").read_text().strip()
  loop.train_and_evaluate(tiny_config, str(tmp_path), mesh)  # resumes at step 4, ends at 8

  assert [s for s, row in logged if "loss" in row] == list(range(1, 9))
  assert [(s, sorted(row)) for s, row in logged if "eval_loss" in row] == [
    (4, ["eval_loss"]),
    (8, ["eval_loss"]),
  ]
  # One W&B run, written twice offline under the workdir, for `wandb sync`.
  runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
  assert len(runs) == 2 and all(r.name.endswith(f"-{run_id}") for r in runs)
  for r in runs:
    assert b"eval_loss" in (r / f"run-{run_id}.wandb").read_bytes()
