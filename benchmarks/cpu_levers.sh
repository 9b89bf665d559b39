# CPU lever measurements (2-core dev machine): each line is one benchmark run appended to
# benchmarks/results.jsonl with its tag.
set -e
B=".venv/bin/python -m experiments.benchmark --steps=30 --warmup=3"
S="--config=experiments/configs/shakespeare_char.py --vocab_size=65"
M="--config=experiments/configs/cpu_10m.py --vocab_size=8192 --steps=10"
$B $S --tag=cpu-shakespeare-base
$B $S --data=real --tag=cpu-shakespeare-realdata
$B $S --config.train.fused_cross_entropy=false --tag=cpu-shakespeare-unfusedCE
$B $S --config.model.remat=full --tag=cpu-shakespeare-remat-full
$B $S --config.train.grad_accum_steps=2 --tag=cpu-shakespeare-accum2
$B $S --config.model.compute_dtype=bfloat16 --tag=cpu-shakespeare-bf16
$B $M --tag=cpu-10m-base
$B $M --config.train.fused_cross_entropy=false --tag=cpu-10m-unfusedCE
$B $M --config.model.remat=dots --tag=cpu-10m-remat-dots
$B $M --config.model.logits_dtype=bfloat16 --config.model.compute_dtype=bfloat16 --tag=cpu-10m-bf16
# Scan over layers (session 6): compile and step time, blocks unrolled vs one lax.scan body.
# The GPT-2 shapes run at batch 1 x 128 in float32 with XLA attention: compile time is the point.
G1="--config=experiments/configs/gpt2_124m.py --config.data.batch_size=1 --config.data.seq_len=128 --steps=3"
G3="--config=experiments/configs/gpt2_350m.py --config.data.batch_size=1 --config.data.seq_len=128 --steps=3"
CPU="--config.model.compute_dtype=float32 --config.model.logits_dtype=float32 --config.model.attention_impl=xla"
for scan in false true; do
  $B $S --warmup=2 --config.model.scan_layers=$scan --tag=cpu-shakespeare-scan-$scan
  $B $M --warmup=2 --config.model.scan_layers=$scan --tag=cpu-10m-scan-$scan
  $B $G1 $CPU --warmup=2 --config.model.scan_layers=$scan --tag=cpu-124m-scan-$scan
  $B $G3 $CPU --warmup=2 --config.model.scan_layers=$scan --tag=cpu-350m-scan-$scan
  $B $G1 $CPU --warmup=2 --config.model.remat=dots --config.model.scan_layers=$scan --tag=cpu-124m-dots-scan-$scan
done
