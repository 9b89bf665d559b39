"""Requests/s of our task harness (lm/infer/harness.py, JAX) against lm-eval's own `hf` backend
(`HFLM`, PyTorch) on the same Hugging Face export and the same requests.

    python -m benchmarks.harness_throughput --out=benchmarks/results/harness_throughput_cpu.json

The model is the demo's shape (experiments/configs/shakespeare_char.py: 4 layers, width 128,
context 64, its character vocabulary padded to 128 ids) with untrained weights (seed 0),
exported with `lm.convert.hf.export`; both backends read that export (ours as
`experiments.evaluate --hf_dir` does). The requests are those of a local 4-way next-line task
from the held-out tenth of tiny Shakespeare (`loglikelihood`: a line, then each of four lines,
the true next one among them) and of its passages (`loglikelihood_rolling`). For each batch
size, each backend is called once (its first call: compilation for ours) and then --repeats
times; the median is its time. lm-eval's backend runs at each of --torch_threads (PyTorch's
threads spin while they wait: on a shared, busy CPU one thread can be the faster). Needs the hf
and eval extras (torch, transformers, lm-eval).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from benchmarks.provenance import git_commit
from experiments.configs import shakespeare_char
from lm.convert import hf
from lm.data.tokenizer import CharTokenizer
from lm.infer import harness
from lm.model import config, counts
from lm.model.transformer import make_model
from lm.runs import loading

CORPUS = "data/tiny_shakespeare.txt"


def held_out_lines(text: str) -> tuple[str, list[str]]:
  """The held-out tenth of `text` and its lines of more than 20 characters that do not name a
  speaker (as docs/evaluation.md's tasks take them)."""
  held = text[int(len(text) * 0.9) :]
  return held, [line for line in held.split("\n") if len(line) > 20 and not line.endswith(":")]


def next_line_requests(lines: Sequence[str], num_docs: int, seed: int) -> list[tuple[str, str]]:
  """(context, continuation) of `num_docs` four-way next-line documents: four requests each."""
  rng = random.Random(seed)
  pairs = []
  for i in rng.sample(range(len(lines) - 1), num_docs):
    others = rng.sample([line for line in lines if line not in (lines[i], lines[i + 1])], 3)
    pairs += [(lines[i] + "\n", choice) for choice in (lines[i + 1], *others)]
  return pairs


def export_demo_shape(text: str, directory: str) -> dict[str, Any]:
  """The demo's model, untrained, exported to `directory`; its sizes."""
  tok = CharTokenizer.train([text])
  cfg = config.architecture(shakespeare_char.get_config().model, tok.vocab_size)
  params = nnx.to_pure_dict(nnx.state(make_model(cfg, rngs=nnx.Rngs(0))))
  hf.export(cfg, jax.tree.map(np.asarray, params), directory, tok)
  return {"model": cfg.__dict__, "params": counts.param_counts(cfg)["total"]}


def _instances(kind: str, args: Sequence[tuple]) -> list:
  instance = importlib.import_module("lm_eval.api.instance").Instance
  return [instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


def timed(call: Callable[[], list], repeats: int) -> tuple[float, float, list]:
  """(seconds of the first call, median seconds of `repeats` more, the last call's results)."""
  start = time.perf_counter()
  out = call()
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    out = call()
    times.append(time.perf_counter() - start)
  return first, statistics.median(times), out


def _max_difference(ours: list, theirs: list) -> float:
  values = [(a[0], b[0]) if isinstance(a, tuple) else (a, b) for a, b in zip(ours, theirs)]
  return max(abs(a - b) for a, b in values)


def _row(backend: str, kind: str, batch: int, requests: int, first: float, seconds: float):
  return {
    "backend": backend,
    "kind": kind,
    "batch_size": batch,
    "requests": requests,
    "first_call_s": first,
    "seconds": seconds,
    "requests_per_s": requests / seconds,
  }


def measure(
  export: str, requests: dict[str, list], batch: int, repeats: int, torch_threads: Sequence[int]
) -> list[dict]:
  """Rows (backend, kind, batch, requests, seconds, requests/s) of both backends at `batch`,
  lm-eval's at each of `torch_threads`."""
  torch = importlib.import_module("torch")  # the hf extra
  hflm = importlib.import_module("lm_eval.models.huggingface").HFLM  # and the eval extra
  ours = harness.HarnessLM(loading.load_hf(export), name=export, batch_size=batch)
  theirs = hflm(pretrained=export, device="cpu", batch_size=batch)
  default_threads, rows = torch.get_num_threads(), []
  for kind, instances in requests.items():
    # Each method takes (requests, disable_tqdm).
    *times, ours_out = timed(functools.partial(getattr(ours, kind), instances, True), repeats)
    rows.append(_row("ours (JAX)", kind, batch, len(instances), *times))
    for threads in torch_threads:
      torch.set_num_threads(threads)
      *times, out = timed(functools.partial(getattr(theirs, kind), instances, True), repeats)
      name = f"lm-eval hf (PyTorch, {threads} thread{'s' * (threads > 1)})"
      rows.append(_row(name, kind, batch, len(instances), *times))
      rows[-1]["max_abs_difference_from_ours"] = _max_difference(ours_out, out)
  torch.set_num_threads(default_threads)
  return rows


def _print(rows: list[dict]) -> None:
  print(
    f"{'kind':<22} {'batch':>5} {'backend':<32} {'requests':>8} {'first s':>8} {'s':>7} "
    f"{'requests/s':>10}"
  )
  for r in rows:
    print(
      f"{r['kind']:<22} {r['batch_size']:>5} {r['backend']:<32} {r['requests']:>8} "
      f"{r['first_call_s']:>8.2f} {r['seconds']:>7.3f} {r['requests_per_s']:>10.1f}"
    )


def main() -> None:
  parser = argparse.ArgumentParser(
    description=(__doc__ or "").split("\n")[0],
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  parser.add_argument(
    "--num_docs", type=int, default=100, help="4-way next-line documents: 4 requests each"
  )
  parser.add_argument("--num_passages", type=int, default=20, help="rolling passages")
  parser.add_argument("--passage_chars", type=int, default=300, help="characters per passage")
  parser.add_argument("--batch_sizes", default="1,16,64", help="batch sizes timed, comma-separated")
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per setting (median)")
  parser.add_argument(
    "--torch_threads", default="2,1", help="torch threads of lm-eval's hf backend, each timed"
  )
  parser.add_argument(
    "--out", default="benchmarks/results/harness_throughput_cpu.json", help="JSON written"
  )
  args = parser.parse_args()
  os.environ.setdefault("HF_HUB_OFFLINE", "1")
  with open(CORPUS) as f:
    text = f.read()
  held, lines = held_out_lines(text)
  step = args.passage_chars
  requests = {
    "loglikelihood": _instances("loglikelihood", next_line_requests(lines, args.num_docs, 0)),
    "loglikelihood_rolling": _instances(
      "loglikelihood_rolling",
      [(held[i * step : (i + 1) * step],) for i in range(args.num_passages)],
    ),
  }
  threads = [int(n) for n in args.torch_threads.split(",")]
  load_before = os.getloadavg()
  with tempfile.TemporaryDirectory() as export:
    sizes = export_demo_shape(text, export)
    rows = [
      r
      for b in args.batch_sizes.split(",")
      for r in measure(export, requests, int(b), args.repeats, threads)
    ]
  torch = importlib.import_module("torch")
  result = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "commit": git_commit(),
    "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    "jax": f"{jax.__version__} ({jax.devices()[0].device_kind})",
    "torch": f"{torch.__version__}, {torch.get_num_threads()} threads by default",
    "load_average_before_after": [load_before, os.getloadavg()],
    "weights": "untrained (make_model seed 0), the demo's shape",
    **sizes,
    "tasks": {
      "loglikelihood": f"4-way next line, {args.num_docs} documents of the held-out tenth",
      "loglikelihood_rolling": f"{args.num_passages} passages of {args.passage_chars} characters",
    },
    "repeats": args.repeats,
    "rows": rows,
  }
  _print(rows)
  with open(args.out, "w") as f:
    f.write(json.dumps(result, indent=2) + "\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
