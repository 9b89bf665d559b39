python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
B="python3 -m experiments.benchmark --steps=15 --warmup=3 --out=$OUT/results.jsonl"
C=experiments/configs
F="grep -v ^[IW][0-9]"
echo "== LN as [tokens, features]"
$B --config=$C/gpt2_124m.py --tag=124m-b32-ln2d --profile_dir=/tmp/prof2d 2>&1 | $F | tail -9
python3 benchmarks/trace_summary.py /tmp/prof2d --top 40 --json $OUT/profile_124m_ln2d.json 
$B --config=$C/gpt2_350m.py --tag=350m-b32-ln2d 2>&1 | $F | grep -E "mfu|step_s_pip"
patch -R -p1 < benchmarks/h100/patches/layernorm_tokens_features.patch
echo "== LN as [B, T, features] (before)"
$B --config=$C/gpt2_124m.py --tag=124m-b32-ln3d 2>&1 | $F | grep -E "mfu|step_s_pip|tokens_per"
$B --config=$C/gpt2_350m.py --tag=350m-b32-ln3d 2>&1 | $F | grep -E "mfu|step_s_pip"
echo "== decode with command buffers for while/conditional"
XLA_FLAGS="--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL" python3 benchmarks/decode.py --size=gpt2_small --batch_sizes=1,64 --out=$OUT/decode_h100_cmdbuf.json 2>&1 | grep -v "^[IW][0-9]" | tail -4
