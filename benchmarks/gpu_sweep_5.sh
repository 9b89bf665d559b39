# Fifth H100 session: GPT-2-small bf16 decode (issue 4); HLO dump + profile of the best 124M step
# to name the elementwise fusions; cuBLASLt epilogues A/B.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 benchmarks/decode.py --size=gpt2_small --batch_sizes=1,64 --out=$OUT/decode_h100.json 2>&1 | grep -v "^[IW][0-9]"
B="python3 -m experiments.benchmark --steps=15 --warmup=3 --out=$OUT/results.jsonl"
C=experiments/configs
F="grep -v ^[IW][0-9]"
XLA_FLAGS="--xla_dump_to=/tmp/hlo --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*train_step.*" \
  $B --config=$C/gpt2_124m.py --tag=124m-b32-dump --profile_dir=/tmp/prof124 2>&1 | $F | tail -9
mkdir -p $OUT/hlo && cp /tmp/hlo/*train_step*after_optimizations.txt $OUT/hlo/ ; ls -la $OUT/hlo
python3 benchmarks/trace_summary.py /tmp/prof124 --top 60 --json $OUT/profile_124m.json | tail -5
XLA_FLAGS="--xla_gpu_enable_cublaslt=true" $B --config=$C/gpt2_124m.py --tag=124m-b32-cublaslt 2>&1 | $F | tail -3
