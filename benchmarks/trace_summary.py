"""Where the device time goes: sums a Perfetto trace's GPU kernel time by kernel and by kind.

    python -m benchmarks.trace_summary PROFILE_DIR [--top 25] [--json out.json]

PROFILE_DIR is what `benchmarks.train_step --profile_dir` (or `PROFILE=DIR benchmarks/gpu.sh`)
wrote.
"""

import argparse
import collections
import glob
import gzip
import json
import os

KINDS = (
  ("attention (cuDNN)", ("cudnn", "flash", "fmha", "sdpa")),
  ("matmul", ("gemm", "cutlass", "xmma", "cublas", "sm90_")),
  ("collective", ("nccl", "all-reduce", "all-gather")),
  ("copy", ("memcpy", "memset", "copy")),
)


def kind_of(name: str) -> str:
  low = name.lower()
  for kind, keys in KINDS:
    if any(k in low for k in keys):
      return kind
  return "fusion / elementwise"


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("profile_dir")
  parser.add_argument("--top", type=int, default=25)
  parser.add_argument("--json", default=None)
  args = parser.parse_args()
  path = sorted(
    glob.glob(os.path.join(args.profile_dir, "**", "perfetto_trace.json.gz"), recursive=True)
  )[-1]
  with gzip.open(path) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  names = {
    e["pid"]: e["args"]["name"]
    for e in events
    if e.get("ph") == "M" and e.get("name") == "process_name"
  }
  gpu_pids = {pid for pid, n in names.items() if "gpu" in n.lower() and "host" not in n.lower()}
  by_name, by_kind = collections.Counter(), collections.Counter()
  for e in events:
    if e.get("ph") == "X" and e.get("pid") in gpu_pids and "dur" in e:
      by_name[e["name"]] += e["dur"]
      by_kind[kind_of(e["name"])] += e["dur"]
  total = sum(by_kind.values())
  print(f"GPU kernel time {total / 1e3:.1f} ms in {path}")
  for kind, us in by_kind.most_common():
    print(f"  {100 * us / total:5.1f}%  {us / 1e3:9.2f} ms  {kind}")
  print("top kernels:")
  for name, us in by_name.most_common(args.top):
    print(f"  {100 * us / total:5.1f}%  {us / 1e3:9.2f} ms  {name[:110]}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(
        {
          "total_ms": total / 1e3,
          "by_kind_ms": {k: v / 1e3 for k, v in by_kind.items()},
          "top_ms": {k: v / 1e3 for k, v in by_name.most_common(args.top)},
        },
        f,
        indent=2,
      )


if __name__ == "__main__":
  main()
