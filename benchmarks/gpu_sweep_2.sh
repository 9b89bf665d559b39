# Second H100 sweep: bf16 logits, batch size, one XLA flag, and a profile of the best 124M setup.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
B="python3 -m experiments.benchmark --steps=15 --warmup=3 --out=$OUT/results.jsonl"
C=experiments/configs
F="grep -v ^[IW][0-9]"
$B --config=$C/gpt2_124m.py --config.model.logits_dtype=bfloat16 --tag=124m-b32-bf16logits --profile_dir=/tmp/prof124 2>&1 | $F | tail -9
python3 benchmarks/trace_summary.py /tmp/prof124 --top 30 --json $OUT/profile_124m.json
$B --config=$C/gpt2_124m.py --config.model.logits_dtype=bfloat16 --config.data.batch_size=64 --tag=124m-b64-bf16logits 2>&1 | $F | tail -9
XLA_FLAGS=--xla_gpu_enable_triton_gemm=false $B --config=$C/gpt2_124m.py --config.model.logits_dtype=bfloat16 --tag=124m-b32-bf16logits-notritongemm 2>&1 | $F | tail -9
$B --config=$C/gpt2_350m.py --config.model.logits_dtype=bfloat16 --tag=350m-b32-bf16logits 2>&1 | $F | tail -9
