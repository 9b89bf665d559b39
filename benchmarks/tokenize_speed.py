"""Encoding speed of the Hugging Face tokenizers (lm/data/hf_tokenizer.py) on a ~10 MB corpus,
with a GPT-2-style byte-level BPE and a BERT WordPiece vocabulary trained on it here.

    python -m benchmarks.tokenize_speed [--megabytes=10] [--corpus=data/tiny_shakespeare.txt]
    python -m benchmarks.tokenize_speed --corpus=/usr/lib/python3.11 --include='*.py' \
        --exclude 'test/*' 'site-packages/*' --out=benchmarks/results/tokenize_pystdlib_cpu.json
    # Against the pure-Python tokenizers the library replaced (lm/data/bpe.py, wordpiece.py):
    git show 7f3edae:lm/data/bpe.py > /tmp/old_bpe.py
    git show 7f3edae:lm/data/wordpiece.py > /tmp/old_wordpiece.py
    python -m benchmarks.tokenize_speed --old_bpe=/tmp/old_bpe.py \
        --old_wordpiece=/tmp/old_wordpiece.py [--old_megabytes=1]

The corpus (a file, or the files under a folder, concatenated) is repeated or cut to
--megabytes of UTF-8 and split into records of 64k characters at line breaks, as the data cache
stores local text; the vocabularies are trained on its files (once, at most --megabytes).
Timed, the best of --repeats: `encode` record by record, and `encode_batch` over batches of the
token cache's size (the library's threads use every core of the process); wall time, and the
CPU time of all threads, which a busy shared machine disturbs less. An old implementation is
timed once, on the first --old_megabytes (all by default); its ids must equal the library's,
and its time is scaled to the whole corpus. A repeated corpus favours the word caches of both
implementations (every word is seen in the first copy).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import tempfile
import time
from collections.abc import Callable

import tokenizers
from tokenizers import models, normalizers, pre_tokenizers, trainers

from benchmarks.provenance import git_commit
from lm.data import hf_tokenizer, prepare
from lm.data.local_text import chunk_text, corpus_files
from lm.data.specials import SPECIAL_TOKENS

RECORD_CHARS = 1 << 16  # lm/data/local_text.py's default record size
VOCABULARIES = {  # name: (vocabulary size asked of the trainer, old module flag)
  "gpt2_bpe": (50257, "old_bpe"),
  "bert_wordpiece": (30522, "old_wordpiece"),
}


def _corpus(args) -> tuple[str, str]:
  """(the text timed: the files repeated or cut to --megabytes, the text trained on: the files
  once, at most as long)."""
  files = corpus_files(args.corpus, args.include, tuple(args.exclude))
  data = "".join(
    pathlib.Path(f).read_text(encoding="utf-8", errors="replace") for f in files
  ).encode()
  size = int(args.megabytes * 1e6)
  return (
    (data * (size // len(data) + 1))[:size].decode("utf-8", errors="ignore"),
    data[:size].decode("utf-8", errors="ignore"),
  )


def _train(name: str, vocab_size: int, text: str, directory: str) -> None:
  """Trains a vocabulary on `text` and writes GPT-2's or BERT's files to `directory`."""
  if name == "gpt2_bpe":
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
      vocab_size=vocab_size,
      show_progress=False,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
  else:
    tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
      vocab_size=vocab_size, show_progress=False, special_tokens=["[UNK]", *SPECIAL_TOKENS]
    )
  tok.train_from_iterator(text.splitlines(), trainer)
  tok.model.save(directory)


def _best(
  fn: Callable[[], list[list[int]]], repeats: int
) -> tuple[tuple[float, float], list[list[int]]]:
  """(wall seconds, CPU seconds of all the process's threads) of the fastest run, and its ids."""
  times = []
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    ids = fn()
    times.append((time.perf_counter() - t0, time.process_time() - c0))
  return min(times), ids


def _row(
  name: str,
  vocab_size: int,
  implementation: str,
  records: list[str],
  seconds: tuple[float, float],
  ids: list[list[int]],
  corpus_bytes: int,
) -> dict:
  timed = sum(len(r.encode("utf-8")) for r in records)
  wall, cpu = seconds
  return {
    "vocabulary": name,
    "vocab_size": vocab_size,
    "implementation": implementation,
    "bytes_timed": timed,
    "tokens": sum(map(len, ids)),
    "seconds": wall,
    "cpu_seconds": cpu,
    "mb_per_s": timed / 1e6 / wall,
    "seconds_for_corpus": wall * corpus_bytes / timed,
    "cpu_seconds_for_corpus": cpu * corpus_bytes / timed,
  }


def _load_module(path: str):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _old_tokenizer(module, directory: str):
  """The tokenizer class of an old bpe.py or wordpiece.py, on `directory`."""
  cls = getattr(module, "ByteBPETokenizer", None) or module.WordPieceTokenizer
  return cls(directory)


def measure(name: str, text: str, train_text: str, records: list[str], args) -> list[dict]:
  """The rows of one vocabulary: library encode_batch and encode, and the old module's."""
  asked, old_flag = VOCABULARIES[name]
  corpus_bytes = len(text.encode("utf-8"))
  with tempfile.TemporaryDirectory() as directory:
    _train(name, asked, train_text, directory)
    tok = hf_tokenizer.load(directory)
    batch = prepare.PIECES_PER_BATCH
    seconds, batched = _best(
      lambda: [
        ids
        for i in range(0, len(records), batch)
        for ids in tok.encode_batch(records[i : i + batch])
      ],
      args.repeats,
    )
    rows = [
      _row(name, tok.vocab_size, "tokenizers encode_batch", records, seconds, batched, corpus_bytes)
    ]
    seconds, single = _best(lambda: [tok.encode(r) for r in records], args.repeats)
    assert single == batched
    rows.append(
      _row(name, tok.vocab_size, "tokenizers encode", records, seconds, single, corpus_bytes)
    )
    if getattr(args, old_flag):
      old = _old_tokenizer(_load_module(getattr(args, old_flag)), directory)
      subset, chars = [], 0
      for r in records:
        if args.old_megabytes and chars >= args.old_megabytes * 1e6:
          break
        subset.append(r)
        chars += len(r)
      seconds, old_ids = _best(lambda: [old.encode(r) for r in subset], 1)
      if old_ids != batched[: len(subset)]:
        raise AssertionError(f"{name}: the old implementation's ids differ from the library's")
      rows.append(
        _row(
          name,
          tok.vocab_size,
          f"pure Python ({args.old_label})",
          subset,
          seconds,
          old_ids,
          corpus_bytes,
        )
      )
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--corpus", default="data/tiny_shakespeare.txt", help="a file or folder")
  parser.add_argument("--include", default="*", help="in a folder: the files taken (a glob)")
  parser.add_argument("--exclude", nargs="*", default=[], help="in a folder: globs left out")
  parser.add_argument("--megabytes", type=float, default=10)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--old_bpe", help="an old bpe.py (ByteBPETokenizer) to time as well")
  parser.add_argument("--old_wordpiece", help="an old wordpiece.py (WordPieceTokenizer)")
  parser.add_argument(
    "--old_megabytes",
    type=float,
    default=0,
    help="time the old implementations on this much (0: all of it)",
  )
  parser.add_argument("--old_label", default="7f3edae", help="the old implementation's commit")
  parser.add_argument("--out", default="benchmarks/results/tokenize_cpu.json")
  args = parser.parse_args()
  text, train_text = _corpus(args)
  records = chunk_text(text, RECORD_CHARS)
  rows = [row for name in VOCABULARIES for row in measure(name, text, train_text, records, args)]
  corpus_mb = len(text.encode("utf-8")) / 1e6
  print(
    f"{corpus_mb:.1f} MB ({len(records)} records) of {args.corpus}, "
    f"tokenizers {tokenizers.__version__}, {len(os.sched_getaffinity(0))} CPUs"
  )
  print(
    f"{'vocabulary':<15} {'vocab':>6} {'implementation':<26} {'MB timed':>8} {'MB/s':>7} "
    f"{'s for corpus':>12} {'time/best':>9} {'CPU s for corpus':>16}"
  )
  for r in rows:
    fastest = min(q["seconds_for_corpus"] for q in rows if q["vocabulary"] == r["vocabulary"])
    print(
      f"{r['vocabulary']:<15} {r['vocab_size']:>6} {r['implementation']:<26} "
      f"{r['bytes_timed'] / 1e6:>8.1f} {r['mb_per_s']:>7.2f} {r['seconds_for_corpus']:>12.2f} "
      f"{r['seconds_for_corpus'] / fastest:>8.1f}x {r['cpu_seconds_for_corpus']:>16.2f}"
    )
  result = {
    "time": datetime.datetime.now().isoformat(timespec="seconds"),
    "commit": git_commit(),
    "device": "cpu",
    "cpus": len(os.sched_getaffinity(0)),
    "tokenizers": tokenizers.__version__,
    "corpus": args.corpus,
    "include": args.include,
    "exclude": args.exclude,
    "corpus_bytes": len(text.encode("utf-8")),
    "train_bytes": len(train_text.encode()),
    "records": len(records),
    "record_chars": RECORD_CHARS,
    "load_average": os.getloadavg(),
    "rows": rows,
  }
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
