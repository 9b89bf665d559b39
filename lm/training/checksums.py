"""Checksums saved with a checkpoint, so that bytes changed on disk are caught before a restored
state is trusted.

Each process records the CRC-32 of every shard that it holds as replica 0 of each array of the
state (with the shard's place in the array and its dtype), and process 0 that of the data
iterator's state, in a JSON file of its own in the step's `checksums` item: Orbax writes it with
the rest of the step, so a checkpoint is never finalized without it. The checksums are taken from
the arrays being saved, before the save returns, never from the files written.

On restore, each recorded shard is checked by one process that holds all of it in the restored
layout, which may differ from the saved one (another mesh, fewer processes); a shard that no one
process holds whole (a finer layout across processes) is left unchecked, and said so. The
processes then agree on the verdict through one all-gather, so that they all fall back alike.
Measured cost: benchmarks/checkpoint_integrity.py.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from jax.experimental import multihost_utils
from orbax.checkpoint import handlers, options

log = logging.getLogger(__name__)

ITEM = "checksums"  # the checkpoint item (folder) that holds one record per process

Region = tuple[tuple[int, int], ...]  # [start, stop) along each axis of an array
_REASON_BYTES = 1024  # of the verdict's text that the processes exchange


def handler() -> handlers.JsonCheckpointHandler:
  """The Orbax handler of the `checksums` item: every process writes its own record."""
  return handlers.JsonCheckpointHandler(
    filename=_record_name(jax.process_index()),
    multiprocessing_options=options.MultiprocessingOptions(primary_host=None),
  )


def _record_name(process: int) -> str:
  return f"process_{process}.json"


def _crc(a: np.ndarray) -> int:
  return zlib.crc32(np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)


def _data_crc(data_state: dict) -> int:
  return zlib.crc32(json.dumps(data_state, sort_keys=True).encode())


def plain(x: jax.Array) -> jax.Array:
  """`x`, or the raw uint32 data of a PRNG key array (which has no host form of its own)."""
  return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x


def _region(index: tuple[slice, ...], shape: tuple[int, ...]) -> Region:
  return tuple(s.indices(n)[:2] for s, n in zip(index, shape))


def record(state: Any, data_state: dict | None) -> dict:
  """This process's record of `state` (the shards it holds as replica 0) and, on process 0, of
  `data_state`."""
  shards = []  # (array's name, its dtype, the shard's region, the shard)
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    x = plain(leaf)
    name, dtype = jax.tree_util.keystr(path), str(x.dtype)
    shards += [
      (name, dtype, _region(s.index, x.shape), s.data)
      for s in x.addressable_shards
      if s.replica_id == 0
    ]
  crcs = _crcs([functools.partial(np.asarray, data) for *_, data in shards])
  arrays: dict[str, Any] = {}
  for (name, dtype, region, _), crc in zip(shards, crcs):
    arrays.setdefault(name, {"dtype": dtype, "shards": []})["shards"].append([region, crc])
  out: dict[str, Any] = {"processes": jax.process_count(), "arrays": arrays}
  if data_state is not None and jax.process_index() == 0:
    out["data"] = _data_crc(data_state)
  return out


def _crcs(reads: list[Callable[[], np.ndarray]]) -> list[int]:
  """The CRC-32 of what each of `reads` returns (a shard read to the host), on threads: zlib
  lets go of the GIL while it hashes."""
  with concurrent.futures.ThreadPoolExecutor() as pool:
    return list(pool.map(lambda read: _crc(read()), reads))


def read(step_dir: epath.Path) -> list[dict] | None:
  """The records of every process saved in `step_dir`, or None where it has no `checksums`
  item. Raises FileNotFoundError where a process's record is missing."""
  folder = step_dir / ITEM
  if not folder.exists():
    return None
  first = folder / _record_name(0)
  if not first.exists():
    raise FileNotFoundError(f"its checksum record {first} is missing")
  records = [json.loads(first.read_text())]
  for process in range(1, records[0]["processes"]):
    path = folder / _record_name(process)
    if not path.exists():
      raise FileNotFoundError(f"its checksum record {path} is missing")
    records.append(json.loads(path.read_text()))
  return records


def mismatch(records: list[dict], state: Any, data_state: dict | None) -> str | None:
  """What of the restored `state` (this process's share of it) and `data_state` does not match
  `records` (the first, in the state's order), or None. Arrays that the records do not describe
  (or in another dtype) are not checked."""
  if data_state is not None and records[0].get("data") not in (None, _data_crc(data_state)):
    return "the data iterator's state does not match the checksum saved with it"
  checks = []  # (what, saved CRC, its read)
  unchecked = 0
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    x, name = plain(leaf), jax.tree_util.keystr(path)
    saved = [r["arrays"][name] for r in records if name in r["arrays"]]
    if not saved or saved[0]["dtype"] != str(x.dtype):
      log.debug("state%s: no checksum of this array in this dtype; not checked", name)
      continue
    shards = [(tuple(map(tuple, region)), crc) for s in saved for region, crc in s["shards"]]
    mine, missed = _shards_to_check(x, shards)
    unchecked += missed
    local = _local_pieces(x)
    checks += [
      (
        f"state{name}{_shard_name(region, x.shape)}",
        crc,
        functools.partial(_assemble, region, local, x.dtype),
      )
      for region, crc in mine
    ]
  if unchecked:
    log.info("%d shards not checked: none is held whole by one process in this layout", unchecked)
  crcs = _crcs([read for *_, read in checks])
  changed = [what for (what, saved, _), crc in zip(checks, crcs) if crc != saved]
  return f"{changed[0]} does not match the checksum saved with it" if changed else None


def _shards_to_check(
  x: jax.Array, shards: list[tuple[Region, int]]
) -> tuple[list[tuple[Region, int]], int]:
  """Those of the saved `shards` (region, CRC) of `x` that this process checks (the first
  process that holds all of one checks it), and how many no one process holds whole."""
  owners = _owners(x)
  mine, missed = [], 0
  for region, crc in shards:
    owner = next((p for p, held in owners.items() if _covers(held, region)), None)
    if owner is None:
      missed += 1
    elif owner == jax.process_index():
      mine.append((region, crc))
  return mine, missed


def _shard_name(region: Region, shape: tuple[int, ...]) -> str:
  """' [start:stop, ...]' of a shard that is not the whole array, else ''."""
  if all(start == 0 and stop == n for (start, stop), n in zip(region, shape)):
    return ""
  return " [" + ", ".join(f"{start}:{stop}" for start, stop in region) + "]"


def _owners(x: jax.Array) -> dict[int, set[Region]]:
  """The distinct regions of `x` that each process holds, processes in order."""
  held: dict[int, set[Region]] = {}
  for device, index in x.sharding.devices_indices_map(x.shape).items():
    held.setdefault(device.process_index, set()).add(_region(index, x.shape))
  return dict(sorted(held.items()))


def _local_pieces(x: jax.Array) -> dict[Region, Any]:
  """This process's distinct shards of `x` by region (read to the host only when used)."""
  return {_region(s.index, x.shape): s.data for s in x.addressable_shards}


def _overlap(a: Region, b: Region) -> Region | None:
  both = tuple((max(a0, b0), min(a1, b1)) for (a0, a1), (b0, b1) in zip(a, b))
  return both if all(start < stop for start, stop in both) else None


def _size(region: Region) -> int:
  return int(np.prod([stop - start for start, stop in region]))


def _covers(held: set[Region], region: Region) -> bool:
  """Whether the distinct regions `held` (a layout's tiles: they do not overlap) cover `region`."""
  covered = (_overlap(h, region) for h in held)
  return sum(_size(c) for c in covered if c is not None) == _size(region)


def _within(inner: Region, outer: Region) -> tuple[slice, ...]:
  """Where `inner` lies in an array of `outer` (which holds it)."""
  return tuple(slice(i0 - o0, i1 - o0) for (i0, i1), (o0, _) in zip(inner, outer))


def _assemble(region: Region, local: dict[Region, Any], dtype: np.dtype) -> np.ndarray:
  """`region` of an array from this process's pieces of it (which cover it): a view of the one
  piece that holds it whole, else a copy put together from several."""
  for held, data in local.items():
    if _overlap(held, region) == region:
      return np.asarray(data)[_within(region, held)]
  out = np.empty([stop - start for start, stop in region], dtype)
  for held, data in local.items():
    part = _overlap(held, region)
    if part is not None:
      out[_within(part, region)] = np.asarray(data)[_within(part, held)]
  return out


def agree(problem: str | None) -> str | None:
  """The first process's problem with a restored checkpoint (None: none has one), the same on
  every process: one all-gather where there are several."""
  if jax.process_count() == 1:
    return problem
  text = b"" if problem is None else problem.encode()[: _REASON_BYTES - 1]
  mine = np.zeros(_REASON_BYTES, np.uint8)
  if problem is not None:
    mine[0] = 1
    mine[1 : 1 + len(text)] = np.frombuffer(text, np.uint8)
  everyone = np.asarray(multihost_utils.process_allgather(mine))
  for process, row in enumerate(everyone):
    if row[0]:
      reason = bytes(row[1:]).rstrip(b"\0").decode(errors="replace")
      return f"process {process}: {reason}"
  return None
