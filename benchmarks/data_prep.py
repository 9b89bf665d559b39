"""What preparing a corpus costs (lm/data/prepare.py) against today's path (token_cache over
TFDS's LocalText builder, the tree given as --old_tree), on corpora made here: the venv's
Python sources repeated into a temporary folder up to each size (hard links; deleted after).

    git worktree add /tmp/old ec37c6d
    python -m benchmarks.data_prep --old_tree=/tmp/old --out=benchmarks/results/data_prep_cpu.json
    python -m benchmarks.data_prep --parts=rss --rss_mb=20,40 --old_rss_mb=   # a quick check

Every measurement runs in a fresh process, one at a time. Parts:
- `rss`: peak RSS of each process of the tree (the preparation and Beam's workers; /proc's
  VmHWM polled), new path with the char tokenizer at --rss_mb, old path at --old_rss_mb;
- `speed`: tokens/s of the preparation (in the child, imports excluded; the tokenizer's training
  and the char vocabulary pass included, each also timed alone) and tokens per CPU second, for
  each --tokenizers x --workers, and the old path, on --speed_mb;
- `first_batch`: a fresh process that loads the prepared --first_batch_mb corpus and takes
  window_batches(...)[0], less a process that only imports (both best of --repeats); its
  preparation (--prepare_workers) is also that size's peak RSS;
- `loader`: tokens/s of pipeline.iterate over that corpus for --loader_seconds, against
  --demo_tokens_per_s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import psutil

from benchmarks.provenance import git_commit

SOURCES = pathlib.Path(sys.prefix) / "lib" / "python3.11" / "site-packages"
MB = 1 << 20

# The child's prologue: config.data for the corpus (argv: path, data_dir, tokenizer).
CONFIG = """
import json, sys, time
from experiments.configs import base
cfg = base.get_config()
d = cfg.data
d.path, d.data_dir, d.tokenizer = sys.argv[1], sys.argv[2], sys.argv[3]
d.include = '*.py'
d.decode_errors = 'replace'  # a few of the venv's files are not UTF-8
d.vocab_size = 32768
d.tokenizer_train_chars = int(sys.argv[4])
"""

NEW_PREPARE = (
  CONFIG
  + """
from lm.data import engine, inputs, prepare, token_cache
phases = []
def timed(fn, name):
  def wrapper(*a, **k):
    t = time.monotonic(); out = fn(*a, **k); phases.append((name, time.monotonic() - t))
    return out
  return wrapper
engine.run = timed(engine.run, 'engine.run')
prepare.train_tokenizer = timed(prepare.train_tokenizer, 'train_tokenizer')
workers, shard_bytes = int(sys.argv[5]), int(sys.argv[6]) or None  # 0: the library's sizes
t = time.monotonic()
units = inputs.Corpus(d, shard_bytes or prepare.UNIT_BYTES)  # streamed, as token_cache does
directory = token_cache.prepared_directory(d, units, None)
m = prepare.prepare(d, directory, units, None, workers, '', shard_bytes)
seconds = time.monotonic() - t
tokens = sum(s['tokens'] for s in m['splits'].values())
shards = len(m['splits'][d.train_split]['shards'])
print('RESULT', json.dumps(dict(seconds=seconds, tokens=tokens, shards=shards, phases=phases)))
"""
)

OLD_PREPARE = (
  CONFIG
  + """
from lm.data import token_cache
t = time.monotonic()
data = token_cache.tokenized_data(d)
seconds = time.monotonic() - t
tokens = sum(len(x) for x in data.splits.values())
print('RESULT', json.dumps(dict(seconds=seconds, tokens=tokens, phases=[])))
"""
)

FIRST_BATCH = (
  CONFIG
  + """
from lm.data import pipeline, token_cache
if sys.argv[5] == 'batch':
  data = token_cache.tokenized_data(d)
  train = data.splits[d.train_split]
  batch = pipeline.window_batches(train, 256, 32, shuffle_seed=0, repeat=True)[0]
  print('RESULT', json.dumps(dict(tokens=len(train), shape=list(batch['tokens'].shape))))
"""
)

LOADER = (
  CONFIG
  + """
from lm.data import pipeline, token_cache
data = token_cache.tokenized_data(d)
ds = pipeline.window_batches(data.splits[d.train_split], 256, 32, shuffle_seed=0, repeat=True)
it = pipeline.iterate(ds, prefetch=8, threads=4)
next(it)
n, t = 0, time.monotonic()
while time.monotonic() - t < float(sys.argv[5]):
  n += next(it)['tokens'].shape[0]
seconds = time.monotonic() - t
print('RESULT', json.dumps(dict(batches=n // 32, seconds=seconds, tokens_per_s=n * 256 / seconds)))
"""
)


def make_corpus(root: pathlib.Path, megabytes: int) -> int:
  """Hard links to the venv's .py files under root/copyK/, copies repeated until `megabytes`;
  returns the bytes."""
  files = sorted(p for p in SOURCES.rglob("*.py") if p.is_file() and not p.is_symlink())
  total, copy = 0, 0
  while total < megabytes * MB:
    for src in files:
      dst = root / f"copy{copy}" / src.relative_to(SOURCES)
      dst.parent.mkdir(parents=True, exist_ok=True)
      os.link(src, dst)
      total += src.stat().st_size
      if total >= megabytes * MB:
        break
    copy += 1
  return total


def _peaks(proc: psutil.Process, peaks: dict[int, int]) -> None:
  """Records VmHWM of `proc` and its descendants into peaks (pid -> bytes)."""
  try:
    tree = [proc, *proc.children(recursive=True)]
  except psutil.NoSuchProcess:
    return
  for p in tree:
    try:
      status = pathlib.Path(f"/proc/{p.pid}/status").read_text()
    except OSError:
      continue
    for line in status.splitlines():
      if line.startswith("VmHWM:"):
        peaks[p.pid] = max(peaks.get(p.pid, 0), int(line.split()[1]) * 1024)


def run_child(tree: str, code: str, args: list[str], threads: int = 0) -> dict:
  """Runs `code` in a fresh Python on `tree`; its RESULT, wall and CPU seconds and the peak RSS
  of each of its processes (the largest first). `threads`: the Hugging Face tokenizers'
  threads per process (0: theirs, one per core)."""
  env = {**os.environ, "PYTHONPATH": tree, "JAX_PLATFORMS": "cpu"}
  if threads:
    env["RAYON_NUM_THREADS"] = str(threads)
  before = os.times()
  start = time.monotonic()
  proc = subprocess.Popen(
    [sys.executable, "-c", code, *args],
    cwd=tree,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  watched = psutil.Process(proc.pid)
  peaks: dict[int, int] = {}
  while proc.poll() is None:
    _peaks(watched, peaks)
    time.sleep(0.05)
  wall = time.monotonic() - start
  out, err = proc.communicate()
  if proc.returncode != 0:
    raise RuntimeError(f"child failed ({proc.returncode}):\n{err[-3000:]}")
  after = os.times()
  cpu = (after.children_user - before.children_user) + (
    after.children_system - before.children_system
  )
  lines = [x for x in out.splitlines() if x.startswith("RESULT ")]
  result = json.loads(lines[-1][len("RESULT ") :]) if lines else {}
  rss = sorted(peaks.values(), reverse=True)
  return {**result, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": [round(r / MB) for r in rss]}


def prepare_run(args, tree: str, corpus: pathlib.Path, tokenizer: str, workers: int) -> dict:
  """One preparation of `corpus` in a fresh process and a fresh data_dir (deleted after)."""
  with tempfile.TemporaryDirectory(dir=args.tmp) as data_dir:
    base = [str(corpus), data_dir, tokenizer, str(args.tokenizer_train_chars)]
    if tree == args.old_tree:
      return run_child(tree, OLD_PREPARE, base)
    new = [*base, str(workers), str(args.shard_mb * MB)]
    return run_child(tree, NEW_PREPARE, new, args.tokenizer_threads)


def _rates(r: dict, workers: int) -> dict:
  busy = r["seconds"]
  return {
    **r,
    "tokens_per_s": r["tokens"] / busy,
    "tokens_per_s_per_worker": r["tokens"] / busy / workers,
    "tokens_per_cpu_s": r["tokens"] / r["cpu_s"],
  }


def with_corpus(args, megabytes: int, fn):
  """fn(corpus folder, its bytes) on a corpus of `megabytes` made for it and deleted after."""
  root = pathlib.Path(tempfile.mkdtemp(dir=args.tmp, prefix=f"corpus{megabytes}_"))
  try:
    size = make_corpus(root, megabytes)
    return fn(root, size)
  finally:
    shutil.rmtree(root)


def part_rss(args) -> list[dict]:
  rows = []
  for tree, sizes in ((args.tree, args.rss_mb), (args.old_tree, args.old_rss_mb)):
    for mb in sizes:
      for workers in args.rss_workers if tree == args.tree else [1]:
        r = with_corpus(
          args,
          mb,
          lambda c, s, t=tree, w=workers: {"bytes": s, **prepare_run(args, t, c, "char", w)},
        )
        row = {
          "path": "new" if tree == args.tree else "old",
          "mb": mb,
          "workers": workers,
          **_rates(r, workers),
        }
        rows.append(row)
        _print(row)
  return rows


def part_speed(args) -> list[dict]:
  def measure(corpus: pathlib.Path, size: int) -> list[dict]:
    rows = []
    runs = [("new", t, w) for t in args.tokenizers for w in args.workers]
    runs += [("old", "char", 1)] if args.old_tree else []
    for path, tokenizer, workers in runs:
      tree = args.tree if path == "new" else args.old_tree
      r = prepare_run(args, tree, corpus, tokenizer, workers)
      row = {"path": path, "tokenizer": tokenizer, "mb": args.speed_mb, "bytes": size}
      rows.append({**row, "workers": workers, **_rates(r, workers)})
      _print(rows[-1])
    return rows

  return with_corpus(args, args.speed_mb, measure)


def part_loading(args) -> dict:
  """Prepares a corpus of --first_batch_mb once, then times the first batch and the loader."""

  def measure(corpus: pathlib.Path, size: int) -> dict:
    with tempfile.TemporaryDirectory(dir=args.tmp) as data_dir:
      base = [str(corpus), data_dir, "char", str(args.tokenizer_train_chars)]
      prep = run_child(
        args.tree, NEW_PREPARE, [*base, str(args.prepare_workers), str(args.shard_mb * MB)]
      )
      _print({"prepared": prep})
      empty = [run_child(args.tree, FIRST_BATCH, [*base, "imports"]) for _ in range(args.repeats)]
      first = [run_child(args.tree, FIRST_BATCH, [*base, "batch"]) for _ in range(args.repeats)]
      loader = run_child(args.tree, LOADER, [*base, str(args.loader_seconds)])
    row = {
      "mb": args.first_batch_mb,
      "bytes": size,
      "prepare": prep,
      "imports_s": [r["wall_s"] for r in empty],
      "first_batch_s": [r["wall_s"] for r in first],
      "first_batch_beyond_startup_s": min(r["wall_s"] for r in first)
      - min(r["wall_s"] for r in empty),
      "first_batch_peak_rss_mb": first[0]["peak_rss_mb"],
      "loader": loader,
      "loader_vs_demo": loader["tokens_per_s"] / args.demo_tokens_per_s,
    }
    _print(row)
    return row

  return with_corpus(args, args.first_batch_mb, measure)


def _print(row: dict) -> None:
  print(json.dumps(row, default=str), flush=True)


def _sizes(text: str) -> list[int]:
  return [int(x) for x in text.split(",") if x]


def main():
  parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
  parser.add_argument("--parts", default="rss,speed,first_batch")
  parser.add_argument("--tree", default=os.getcwd(), help="the tree of the new path")
  parser.add_argument("--old_tree", default="", help="a checkout of today's path (ec37c6d)")
  parser.add_argument("--rss_mb", type=_sizes, default=[500, 2000])
  parser.add_argument("--rss_workers", type=_sizes, default=[1])
  parser.add_argument("--old_rss_mb", type=_sizes, default=[135, 270])
  parser.add_argument("--speed_mb", type=int, default=135)
  parser.add_argument("--tokenizers", type=lambda t: t.split(","), default=["char", "bpe"])
  parser.add_argument("--workers", type=_sizes, default=[1, 2])
  parser.add_argument(
    "--shard_mb", type=int, default=0, help="input MB per shard (0: prepare.shard_size's)"
  )
  parser.add_argument("--tokenizer_threads", type=int, default=0, help="0: one per core")
  parser.add_argument("--tokenizer_train_chars", type=int, default=20_000_000)
  parser.add_argument("--first_batch_mb", type=int, default=2000)
  parser.add_argument("--prepare_workers", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--loader_seconds", type=float, default=20.0)
  parser.add_argument("--demo_tokens_per_s", type=float, default=25_000.0)
  parser.add_argument("--tmp", default=None, help="where corpora and data_dirs are made")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  parts = args.parts.split(",")
  if not args.old_tree:
    args.old_rss_mb = []
  result = {
    "benchmark": "data_prep",
    "date": datetime.datetime.now().isoformat(timespec="minutes"),
    "commit": git_commit(),
    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    "load_before": os.getloadavg(),
    "args": dict(vars(args)),
  }
  if "rss" in parts:
    result["rss"] = part_rss(args)
  if "speed" in parts:
    result["speed"] = part_speed(args)
  if "first_batch" in parts:
    result["first_batch"] = part_loading(args)
  result["load_after"] = os.getloadavg()
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
