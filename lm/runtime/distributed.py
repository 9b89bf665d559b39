"""Multi-process start-up (`jax.distributed`) and the "process 0 first" barrier.

A run is multi-process when a coordinator address and process count are given (flags, or the
`LM_COORDINATOR_ADDRESS` / `LM_NUM_PROCESSES` / `LM_PROCESS_ID` environment variables), or when
`LM_DISTRIBUTED=auto` asks JAX to detect the cluster itself (TPU VM pod slices, Slurm, ...).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)

T = TypeVar("T")

# A dead peer is declared after this many seconds without heartbeats (JAX's default is 100).
HEARTBEAT_TIMEOUT_S = 10
# How long start-up waits for every process to reach the coordinator.
INITIALIZATION_TIMEOUT_S = 120


def initialize(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> bool:
  """Starts `jax.distributed` if this is one of several processes; returns whether it did.

  Call before any other JAX call. Arguments left None fall back to the `LM_*` environment
  variables; with no coordinator address anywhere, `LM_DISTRIBUTED=auto` lets JAX detect the
  cluster, and otherwise the run is single-process.
  """
  env = os.environ
  coordinator_address = coordinator_address or env.get("LM_COORDINATOR_ADDRESS") or None
  if num_processes is None and env.get("LM_NUM_PROCESSES"):
    num_processes = int(env["LM_NUM_PROCESSES"])
  if process_id is None and env.get("LM_PROCESS_ID"):
    process_id = int(env["LM_PROCESS_ID"])
  if coordinator_address is None and env.get("LM_DISTRIBUTED", "") != "auto":
    return False
  if coordinator_address is not None and (num_processes is None or process_id is None):
    raise ValueError("a coordinator address needs num_processes and process_id too")
  # Without an address, JAX detects the cluster itself: TPU VM, Slurm, MPI.
  jax.distributed.initialize(
    coordinator_address,
    num_processes,
    process_id,
    initialization_timeout=INITIALIZATION_TIMEOUT_S,
    heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
  )
  log.info(
    "process %d of %d; %d local / %d global devices",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )
  return True


def process_zero_first(fn: Callable[[], T], name: str) -> T:
  """Runs `fn` on process 0, then on the others: for on-disk caches that process 0 builds and
  the others only load."""
  if jax.process_count() == 1:
    return fn()
  if jax.process_index() == 0:
    out = fn()
    multihost_utils.sync_global_devices(f"lm:{name}")
    return out
  multihost_utils.sync_global_devices(f"lm:{name}")
  return fn()


def differs_across_processes(text: str) -> bool:
  """Whether some process holds another `text` (all must call it, with texts of equal length)."""
  if jax.process_count() == 1:
    return False
  mine = np.frombuffer(text.encode(), np.uint8)
  return bool(np.any(multihost_utils.process_allgather(mine) != mine))
