"""What a run measures of itself: compilations, wall time per phase, throughput and MFU."""

from __future__ import annotations

import collections
import contextlib
import time

import jax

from lm.runtime import hardware


class CompileCounter:
  """Counts XLA compilations per jitted function (`jit(name)`) while active, from JAX's
  monitoring events (not the dispatch cache's size, which can hold several entries for one
  compilation)."""

  EVENT = "/jax/core/compile/backend_compile_duration"

  def __init__(self):
    self.counts: collections.Counter[str] = collections.Counter()

  def _listen(self, event: str, duration_secs: float, **kwargs: str | int) -> None:
    del duration_secs
    if event == self.EVENT:
      self.counts[str(kwargs.get("fun_name", "?"))] += 1

  def start(self) -> CompileCounter:
    jax.monitoring.register_event_duration_secs_listener(self._listen)
    return self

  def stop(self) -> None:
    jax.monitoring.unregister_event_duration_listener(self._listen)

  def count(self, name: str) -> int:
    return self.counts[f"jit({name})"]


class PhaseTimes:
  """Wall seconds spent in each named phase of a run (phases may be entered many times)."""

  def __init__(self):
    self.seconds: dict[str, float] = collections.defaultdict(float)

  @contextlib.contextmanager
  def __call__(self, name: str):
    t = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[name] += time.perf_counter() - t

  def line(self, total_s: float) -> str:
    """'setup 1.2s, compile 3.4s, ..., other 0.1s' in order of entry, the rest as 'other'."""
    other = total_s - sum(self.seconds.values())
    return ", ".join(f"{k} {v:.1f}s" for k, v in [*self.seconds.items(), ("other", other)])


class Throughput:
  """Tokens/s, MFU and ETA over the steps since the last report."""

  def __init__(
    self, tokens_per_step: int, flops_per_token: float, peak_flops: float, total_steps: int
  ):
    self.tokens_per_step, self.flops_per_token = tokens_per_step, flops_per_token
    self.peak_flops, self.total_steps = peak_flops, total_steps
    self._t, self._step = time.perf_counter(), None

  def reset(self, step: int) -> None:
    self._t, self._step = time.perf_counter(), step

  def report(self, step: int) -> dict[str, float]:
    now = time.perf_counter()
    steps = step - (self._step if self._step is not None else step)
    dt = now - self._t
    self._t, self._step = now, step
    if steps <= 0 or dt <= 0:
      return {}
    step_time = dt / steps
    tokens_per_s = self.tokens_per_step / step_time
    return {
      "step_time_s": step_time,
      "tokens_per_s": tokens_per_s,
      "mfu": hardware.mfu(tokens_per_s, self.flops_per_token, self.peak_flops),
      "eta_s": step_time * (self.total_steps - step),
    }
