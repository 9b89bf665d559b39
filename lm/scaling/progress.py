"""What a sweep says about itself: the plan before training, run k of N and an ETA during.

Times are estimated from training FLOPs (under the sweep's `flops_convention`) over a FLOP rate
per worker: measured from the finished runs in the results table or in this sweep, else the
configured `scaling.est_flops_per_s`, labelled as a guess.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from lm.scaling import grid


def duration(seconds: float) -> str:
  """'1h02m', '3m05s' or '42s'."""
  s = round(seconds)
  if s >= 3600:
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
  return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def measured_rate(rows: Sequence[dict[str, Any]], convention: str) -> float | None:
  """FLOP/s per worker of finished rows (the FLOPs they trained under `convention`, a branch's
  from its branch step, over their wall time, start-up included), or None without rows."""
  # .get: rows from before the branch_step column
  flops = sum(
    float(r[f"flops_{convention}"]) * (1 - r.get("branch_step", 0) / r["steps"]) for r in rows
  )
  wall = sum(float(r["wall_s"]) for r in rows)
  return flops / wall if rows and wall > 0 else None


def plan_lines(
  plans: Sequence[grid.RunPlan],
  pending: Sequence[grid.RunPlan],
  rows: Sequence[dict[str, Any]],
  config,
  workers: int,
) -> list[str]:
  """The plan: runs pending and done, FLOPs and an estimated time, then one line per pending
  run."""
  scaling = config.scaling
  rate = measured_rate(rows, scaling.flops_convention)
  source = f"measured on {len(rows)} finished runs"
  if rate is None:
    rate, source = scaling.est_flops_per_s, "a guess: scaling.est_flops_per_s"
  total = sum(p.flops_to_train for p in pending)
  lines = [
    f"plan: {len(plans)} runs, {len(plans) - len(pending)} done, {len(pending)} to train "
    f"on {workers} worker(s); {total:.3g} training FLOPs ({scaling.flops_convention}) to go",
    f"estimated time: {duration(total / rate / max(1, min(workers, len(pending))))} at "
    f"{rate:.3g} FLOP/s per worker ({source})",
  ]
  width = max((len(p.name) for p in pending), default=0)
  for k, p in enumerate(pending, 1):
    what = (
      f"from step {p.branch_step} of {p.branch_of}  "
      if p.branch_of
      else f"keeps {', '.join(map(str, p.keep_steps))}  "
      if p.keep_steps
      else ""
    )
    budget = f"{p.budget:.2g}" if p.budget else "-"  # a stable run serves several
    lines.append(
      f"  {k:>3}. {p.name:<{width}}  C {budget}  N {p.params:,}  "
      f"D {p.tokens:,}  {p.steps} steps  {what}{p.flops_to_train:.3g} FLOPs  "
      f"~{duration(p.flops_to_train / rate)}"
    )
  return lines


class Progress:
  """Run k of N as runs start, and the sweep's ETA as they finish, from the rate measured on
  this sweep's finished runs (before the first: the plan's rate)."""

  def __init__(
    self, pending: Sequence[grid.RunPlan], rows: Sequence[dict[str, Any]], config, workers: int
  ):
    self._index = {p.name: k for k, p in enumerate(pending, 1)}
    self._left = {p.name: p.flops_to_train for p in pending}
    self._total, self._workers = len(pending), workers
    self._convention = config.scaling.flops_convention
    self._prior = measured_rate(rows, self._convention) or config.scaling.est_flops_per_s
    self._flops_done, self._wall_done, self._finished = 0.0, 0.0, 0
    self._t0 = time.perf_counter()

  def started(self, plan: grid.RunPlan, where: str = "") -> str:
    """'run k of N: name (...)'."""
    return (
      f"run {self._index[plan.name]} of {self._total}: {plan.name}{where} "
      f"({plan.params:,} params, {plan.steps} steps, {plan.flops_to_train:.3g} FLOPs)"
    )

  def dropped(self, plan: grid.RunPlan) -> None:
    """`plan` stopped early (failed or preempted): it leaves the ETA."""
    self._left.pop(plan.name, None)

  def finished(self, plan: grid.RunPlan, wall_s: float) -> str:
    """'finished k of N: name in ...; sweep ... so far, m to go, ETA ...' after `plan` took
    `wall_s` seconds (the runs still training count whole)."""
    self._finished += 1
    self._flops_done += self._left.pop(plan.name)
    self._wall_done += wall_s
    rate = (
      self._flops_done / self._wall_done
      if self._wall_done > 0 and self._flops_done > 0
      else self._prior
    )
    left = sum(self._left.values())
    eta = left / rate / max(1, min(self._workers, len(self._left)))
    elapsed = time.perf_counter() - self._t0
    return (
      f"finished {self._finished} of {self._total}: {plan.name} in {duration(wall_s)}; "
      f"sweep {duration(elapsed)} so far, {len(self._left)} to go, ETA {duration(eta)}"
    )
