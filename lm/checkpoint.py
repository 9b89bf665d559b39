"""Orbax checkpoints: the train state (params, optimizer, step, RNG) and the data iterator."""

from __future__ import annotations

from typing import Any

import orbax.checkpoint as ocp

from lm import paths


def manager(workdir: str, *, every: int, keep: int, use_async: bool) -> ocp.CheckpointManager:
  """A CheckpointManager over `<workdir>/checkpoints` (local or gs://) saving every `every`
  steps, keeping `keep`."""
  options = ocp.CheckpointManagerOptions(save_interval_steps=every, max_to_keep=keep,
                                         enable_async_checkpointing=use_async, create=True)
  return ocp.CheckpointManager(paths.run_path(workdir) / "checkpoints",
                               options=options, item_names=("state", "data"))


def save(mngr: ocp.CheckpointManager, step: int, state: Any, data_state: dict | None,
         *, force: bool = False) -> bool:
  """Saves at `step` if the interval says so (or `force`); returns whether it saved."""
  args = {"state": ocp.args.StandardSave(state)}
  if data_state is not None:
    args["data"] = ocp.args.JsonSave(data_state)
  return mngr.save(step, args=ocp.args.Composite(**args), force=force)


def restore(mngr: ocp.CheckpointManager, abstract_state: Any, step: int | None = None,
            *, with_data: bool = True) -> tuple[Any, dict | None]:
  """Restores (state, data iterator state) at `step` (default: latest) onto the given shardings."""
  step = mngr.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {mngr.directory}")
  args = {"state": ocp.args.StandardRestore(abstract_state)}
  if with_data:
    args["data"] = ocp.args.JsonRestore()
  out = mngr.restore(step, args=ocp.args.Composite(**args))
  return out["state"], (out["data"] if with_data else None)
