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
