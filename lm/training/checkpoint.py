"""Orbax checkpoints: the train state (params, optimizer, step, RNG), the data iterator, and the
checksums that a restore is checked against (lm/training/checksums.py)."""

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
from lm.training import checksums

log = logging.getLogger(__name__)

# Where a checkpoint that does not restore is moved, beside `checkpoints/`: kept, not deleted.
UNREADABLE = "unreadable_checkpoints"


# The barrier with which Orbax's Checkpointer.restore ends (orbax-checkpoint 0.12).
_ORBAX_RESTORE_BARRIER = "Checkpointer:restore"


class NoCheckpointRestores(ValueError):
  """No checkpoint of a run (or not the one asked for) restores: a ValueError, so that every
  entry point ends with it in one `error:` line."""


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
    paths.run_path(workdir) / "checkpoints",
    options=options,
    item_names=("state", "data"),
    item_handlers={checksums.ITEM: checksums.handler()},
  )


def save(
  checkpoints: ocp.CheckpointManager,
  step: int,
  state: Any,
  data_state: dict | None,
  *,
  force: bool = False,
) -> bool:
  """Saves at `step` if the interval says so (or `force`), with this process's checksums of what
  it saves (lm/training/checksums.py); returns whether it saved."""
  if not force and not checkpoints.should_save(step):
    return False
  args = {
    "state": ocp.args.StandardSave(state),
    checksums.ITEM: ocp.args.JsonSave(checksums.record(state, data_state)),
  }
  if data_state is not None:
    args["data"] = ocp.args.JsonSave(data_state)
  return checkpoints.save(step, args=ocp.args.Composite(**args), force=force)


def restore(
  checkpoints: ocp.CheckpointManager, abstract_state: Any, step: int, *, with_data: bool = True
) -> tuple[Any, dict | None]:
  """Restores (state, data iterator state) at `step` onto the given shardings, checked against
  the checksums saved with it; raises NoCheckpointRestores if it does not restore or does not
  match them."""
  restored, problem = _restore_checked(checkpoints, abstract_state, step, with_data)
  if restored is None:
    raise NoCheckpointRestores(
      f"checkpoint step {step} in {checkpoints.directory} does not restore: {problem}"
    )
  return restored


def _restore_checked(
  checkpoints: ocp.CheckpointManager, abstract_state: Any, step: int, with_data: bool
) -> tuple[tuple[Any, dict | None] | None, str | None]:
  """((state, data iterator state), None), or (None, why not): the same on every process."""
  restored = None
  try:
    restored = _restore_unchecked(checkpoints, abstract_state, step, with_data)
  except Exception as e:
    problem = _reason(e)
    # A process that could not read its shards meets the others at the barrier that ends
    # Orbax's restore (where they wait), so that the next collective is the same for all.
    ocp.multihost.sync_global_processes(_ORBAX_RESTORE_BARRIER)
  else:
    try:
      problem = _check(checkpoints, step, *restored)
    except Exception as e:
      problem = _reason(e)
  problem = checksums.agree(problem)
  return (None, problem) if problem else (restored, None)


def _restore_unchecked(
  checkpoints: ocp.CheckpointManager, abstract_state: Any, step: int, with_data: bool
) -> tuple[Any, dict | None]:
  args = {"state": ocp.args.StandardRestore(abstract_state)}
  if with_data:
    args["data"] = ocp.args.JsonRestore()
  out = checkpoints.restore(step, args=ocp.args.Composite(**args))
  return out["state"], (out["data"] if with_data else None)


def _check(
  checkpoints: ocp.CheckpointManager, step: int, state: Any, data_state: dict | None
) -> str | None:
  """What of this process's share of a restored checkpoint does not match its checksums; a
  checkpoint saved before they were recorded is not checked."""
  records = checksums.read(checkpoints.directory / str(step))
  if records is not None:
    return checksums.mismatch(records, state, data_state)
  if checksums.ITEM in (checkpoints.metadata(step).item_handlers or {}):
    return f"its checksums ({checksums.ITEM}/) are missing"
  log.debug("checkpoint step %d has no checksums (saved before they were recorded)", step)
  return None


def _reason(e: Exception) -> str:
  """`e` in one line of at most about 240 characters."""
  # TensorStore nests its errors (the cause comes last) and appends its specs.
  reason = (
    re.sub(r"\s*\[(source locations|tensorstore_spec)[^=]*=.*$", "", " ".join(str(e).split()))
    or type(e).__name__
  )
  return f"{reason[:80]} ... {reason[-150:]}" if len(reason) > 240 else reason


def restore_newest(
  checkpoints: ocp.CheckpointManager,
  abstract_state: Any,
  *,
  with_data: bool = True,
  set_aside: bool = True,
) -> tuple[Any, dict | None, int] | None:
  """(state, data iterator state, step) of the newest checkpoint that restores and matches its
  checksums, or None if there is none.

  A newer checkpoint that does not (a truncated file, an empty step folder, changed bytes) is
  named in one line and, if `set_aside` (training does; the tools that only read a run do
  not), moved to `<workdir>/unreadable_checkpoints/<step>` so that the run can save that step
  again. If none restores, the error names every step and why.
  """
  failures = []
  for step in sorted(checkpoints.all_steps(), reverse=True):
    restored, problem = _restore_checked(checkpoints, abstract_state, step, with_data)
    if restored is None:
      failures.append((step, problem))
      continue
    for bad, reason in failures:
      if set_aside:
        _set_aside(checkpoints, bad, reason, step)
      else:
        log.warning("checkpoint step %d does not restore (%s); using step %d", bad, reason, step)
    if failures and set_aside:
      checkpoints.reload()
    return *restored, step
  if failures:
    raise NoCheckpointRestores(
      f"no checkpoint in {checkpoints.directory} restores: "
      + "; ".join(f"step {s}: {r}" for s, r in failures)
    )
  return None


def _set_aside(checkpoints: ocp.CheckpointManager, step: int, reason: str, resumed: int) -> None:
  """Process 0 moves checkpoint `step` aside and says so; the others wait for it."""
  if jax.process_index() == 0:
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
    target.parent.mkdir(parents=True, exist_ok=True)
    (checkpoints.directory / str(step)).rename(target)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"lm:set_aside_checkpoint_{step}")
