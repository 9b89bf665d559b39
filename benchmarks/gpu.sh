#!/usr/bin/env bash
# One training-step benchmark on a GPU: a GPT-2 size, a global batch and any config fields.
#
#   bash benchmarks/gpu.sh SIZE BATCH [SECTION.FIELD=VALUE ...]
#   bash benchmarks/gpu.sh 124m 64
#   bash benchmarks/gpu.sh 350m 32 execution.separate_qkv=true model.use_bias=false
#
# SIZE is 124m or 350m (experiments/configs/gpt2_<SIZE>.py: bf16, cuDNN attention, bf16
# logits). Each FIELD=VALUE becomes --config.FIELD=VALUE, so any execution lever (or other
# field) is an argument. One JSON row goes to $OUT/train_step.jsonl (default
# benchmarks/results/); its tag names the size, batch and fields.
#
# Environment:
#   REHEARSE=1   on a CPU: tiny shapes (2 layers, width 64, context 64, batch 4), XLA attention,
#                2 steps; checks the command line end to end before device time is spent.
#   PROFILE=DIR  also trace 5 steps into DIR and print the kernel-time summary.
#   GIT_COMMIT   the tree's commit, where the tree arrives without .git (the device tool).
#   PY           the interpreter (default python3; .venv/bin/python here).
# On a bare GPU machine, wheels carried in .whl/ (ml_collections and what it needs) are
# installed to /tmp/site first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  sed -n '2,20p' "$0"
  exit 2
fi
SIZE=$1
BATCH=$2
TAG="$SIZE-b$BATCH"
shift 2
CONFIG=experiments/configs/gpt2_$SIZE.py
[ -f "$CONFIG" ] || { echo "error: no config $CONFIG (SIZE: 124m or 350m)" >&2; exit 2; }
PY=${PY:-python3}
OUT=${OUT:-benchmarks/results}
ARGS=(--config="$CONFIG" --out="$OUT/train_step.jsonl")
if [ -n "${REHEARSE:-}" ]; then
  ARGS+=(--steps=2 --warmup=1 --config.model.num_layers=2 --config.model.d_model=64
         --config.model.num_heads=2 --config.data.seq_len=64 --config.model.max_seq_len=64
         --config.execution.attention_impl=xla)
  BATCH=4
else
  ARGS+=(--steps=15 --warmup=3)
  if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
  fi
fi
[ -n "${REHEARSE:-}" ] && TAG="rehearsal-$TAG"
ARGS+=(--config.data.batch_size="$BATCH")
for field in "$@"; do
  ARGS+=(--config."$field")
  TAG="$TAG-$field"
done
[ -n "${PROFILE:-}" ] && ARGS+=(--profile_dir="$PROFILE")
echo "[gpu.sh] $TAG"
$PY -m benchmarks.train_step "${ARGS[@]}" --tag="$TAG"
if [ -n "${PROFILE:-}" ]; then
  $PY -m benchmarks.trace_summary "$PROFILE" --top 25
fi
