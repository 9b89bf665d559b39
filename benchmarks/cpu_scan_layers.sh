# Scan over layers on the 2-core CPU: compile time and step time, the blocks unrolled vs as one
# lax.scan body. Each line appends one row to benchmarks/results.jsonl with its tag.
set -e
B=".venv/bin/python -m experiments.benchmark --warmup=2"
S="--config=experiments/configs/shakespeare_char.py --vocab_size=65 --steps=30"
M="--config=experiments/configs/cpu_10m.py --vocab_size=8192 --steps=10"
# GPT-2 124M and 350M shapes at batch 1 x 128 on CPU: the compile time is what is measured.
G1="--config=experiments/configs/gpt2_124m.py --config.data.batch_size=1 --config.data.seq_len=128 --steps=3"
G3="--config=experiments/configs/gpt2_350m.py --config.data.batch_size=1 --config.data.seq_len=128 --steps=3"
CPU="--config.model.compute_dtype=float32 --config.model.logits_dtype=float32 --config.model.attention_impl=xla"
for scan in false true; do
  $B $S --config.model.scan_layers=$scan --tag=cpu-shakespeare-scan-$scan
  $B $M --config.model.scan_layers=$scan --tag=cpu-10m-scan-$scan
  $B $G1 $CPU --config.model.scan_layers=$scan --tag=cpu-124m-scan-$scan
  $B $G3 $CPU --config.model.scan_layers=$scan --tag=cpu-350m-scan-$scan
  $B $G1 $CPU --config.model.remat=dots --config.model.scan_layers=$scan --tag=cpu-124m-dots-scan-$scan
done
