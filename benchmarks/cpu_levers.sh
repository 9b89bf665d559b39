#!/usr/bin/env bash
# Execution levers on a CPU, each one benchmarks.train_step row (tagged) appended to
# benchmarks/results/train_step.jsonl. Run from the repository root: bash benchmarks/cpu_levers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B="${PY:-.venv/bin/python} -m benchmarks.train_step --steps=30 --warmup=3"
S="--config=experiments/configs/shakespeare_char.py --vocab_size=65"
M="--config=experiments/configs/cpu_10m.py --vocab_size=8192 --steps=10"
$B $S --tag=cpu-shakespeare-base
$B $S --data=real --tag=cpu-shakespeare-realdata
$B $S --config.execution.fused_cross_entropy=false --tag=cpu-shakespeare-unfusedCE
$B $S --config.execution.remat=full --tag=cpu-shakespeare-remat-full
$B $S --config.train.grad_accum_steps=2 --tag=cpu-shakespeare-accum2
$B $S --config.execution.compute_dtype=bfloat16 --tag=cpu-shakespeare-bf16
$B $M --tag=cpu-10m-base
$B $M --config.execution.fused_cross_entropy=false --tag=cpu-10m-unfusedCE
$B $M --config.execution.remat=dots --tag=cpu-10m-remat-dots
$B $M --config.execution.logits_dtype=bfloat16 --config.execution.compute_dtype=bfloat16 \
    --tag=cpu-10m-bf16
# Scan over layers: compile and step time, blocks unrolled vs one lax.scan body. The GPT-2
# shapes run at batch 1 x 128 in float32 with XLA attention: compile time is the point.
G1="--config=experiments/configs/gpt2_124m.py --config.data.batch_size=1 --config.data.seq_len=128 --steps=3"
G3="--config=experiments/configs/gpt2_350m.py --config.data.batch_size=1 --config.data.seq_len=128 --steps=3"
CPU="--config.execution.compute_dtype=float32 --config.execution.logits_dtype=float32
     --config.execution.attention_impl=xla"
for scan in false true; do
  $B $S --warmup=2 --config.execution.scan_layers=$scan --tag=cpu-shakespeare-scan-$scan
  $B $M --warmup=2 --config.execution.scan_layers=$scan --tag=cpu-10m-scan-$scan
  $B $G1 $CPU --warmup=2 --config.execution.scan_layers=$scan --tag=cpu-124m-scan-$scan
  $B $G3 $CPU --warmup=2 --config.execution.scan_layers=$scan --tag=cpu-350m-scan-$scan
  $B $G1 $CPU --warmup=2 --config.execution.remat=dots --config.execution.scan_layers=$scan \
      --tag=cpu-124m-dots-scan-$scan
done
