"""Orbax checkpoints: the train state (params, optimizer, step, RNG) and the data iterator."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers

from lm.runtime import paths

log = logging.getLogger(__name__)

# Where a checkpoint that does not restore is moved, beside `checkpoints/`: kept, not deleted.
UNREADABLE = "unreadable_checkpoints"


class NoCheckpointRestores(RuntimeError):
  """Every checkpoint of a run failed to restore."""


def manager(
  workdir: str, *, every: int, keep: int, use_async: bool, keep_steps: Sequence[int] = ()
) -> ocp.CheckpointManager:
  """A CheckpointManager over `<workdir>/checkpoints` (local or gs://) saving every `every`
  steps, keeping the newest `keep` (-1: all) and every checkpoint of `keep_steps`."""
  policy = None
  if keep_steps and keep >= 0:
    policy = checkpoint_managers.AnyPreservationPolicy(
      [checkpoint_managers.LatestN(keep), checkpoint_managers.CustomSteps(list(keep_steps))]
    )
  options = ocp.CheckpointManagerOptions(
    save_interval_steps=every,
    max_to_keep=None if keep < 0 or policy else keep,
    preservation_policy=policy,
    enable_async_checkpointing=use_async,
    create=True,
  )
  return ocp.CheckpointManager(
    paths.run_path(workdir) / "checkpoints", options=options, item_names=("state", "data")
  )


def save(
  checkpoints: ocp.CheckpointManager,
  step: int,
  state: Any,
  data_state: dict | None,
  *,
  force: bool = False,
) -> bool:
  """Saves at `step` if the interval says so (or `force`); returns whether it saved."""
  args = {"state": ocp.args.StandardSave(state)}
  if data_state is not None:
    args["data"] = ocp.args.JsonSave(data_state)
  return checkpoints.save(step, args=ocp.args.Composite(**args), force=force)


def restore(
  checkpoints: ocp.CheckpointManager,
  abstract_state: Any,
  step: int | None = None,
  *,
  with_data: bool = True,
) -> tuple[Any, dict | None]:
  """Restores (state, data iterator state) at `step` (default: latest) onto the given shardings."""
  step = checkpoints.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {checkpoints.directory}")
  args = {"state": ocp.args.StandardRestore(abstract_state)}
  if with_data:
    args["data"] = ocp.args.JsonRestore()
  out = checkpoints.restore(step, args=ocp.args.Composite(**args))
  return out["state"], (out["data"] if with_data else None)


def restore_newest(
  checkpoints: ocp.CheckpointManager, abstract_state: Any
) -> tuple[Any, dict | None, int] | None:
  """(state, data iterator state, step) of the newest checkpoint that restores, or None if
  there is none.

  A newer checkpoint that does not restore (a truncated file, an empty step folder) is moved
  to `<workdir>/unreadable_checkpoints/<step>`, with one line saying so, so that the run can
  save that step again. If none restores, the error names every step and why.
  """
  failures = []
  for step in sorted(checkpoints.all_steps(), reverse=True):
    try:
      state, data_state = restore(checkpoints, abstract_state, step)
    except Exception as e:
      # TensorStore nests its errors (the cause comes last) and appends its specs.
      reason = (
        re.sub(r"\s*\[(source locations|tensorstore_spec)[^=]*=.*$", "", " ".join(str(e).split()))
        or type(e).__name__
      )
      if len(reason) > 240:
        reason = f"{reason[:80]} ... {reason[-150:]}"
      failures.append((step, reason))
      continue
    for bad, reason in failures:
      _set_aside(checkpoints, bad, reason, step)
    if failures:
      checkpoints.reload()
    return state, data_state, step
  if failures:
    raise NoCheckpointRestores(
      f"no checkpoint in {checkpoints.directory} restores: "
      + "; ".join(f"step {s}: {r}" for s, r in failures)
    )
  return None


def _set_aside(checkpoints: ocp.CheckpointManager, step: int, reason: str, resumed: int) -> None:
  target = checkpoints.directory.parent / UNREADABLE / str(step)
  copies = 1
  while target.exists():  # set aside before at this step: keep both
    copies += 1
    target = target.parent / f"{step}-{copies}"
  log.warning(
    "checkpoint step %d does not restore (%s): moved to %s; resuming from step %d",
    step,
    reason,
    target,
    resumed,
  )
  if jax.process_index() == 0:
    target.parent.mkdir(parents=True, exist_ok=True)
    (checkpoints.directory / str(step)).rename(target)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"lm:set_aside_checkpoint_{step}")
