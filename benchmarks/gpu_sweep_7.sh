# Seventh H100 run: LayerNorm on [tokens, features] (committed) dumped and profiled; the MLP on
# [tokens, features] (benchmarks/h100/patches/mlp_tokens_features.patch) A/B; batch 64 and bias-free with both.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
B="python3 -m experiments.benchmark --steps=15 --warmup=3 --out=$OUT/results.jsonl"
C=experiments/configs
F="grep -v ^[IW][0-9]"
S="grep -E mfu|step_s_pip|peak_mem"
XLA_FLAGS="--xla_dump_to=/tmp/hlo --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*train_step.*" \
  $B --config=$C/gpt2_124m.py --tag=124m-b32-ln2d --profile_dir=/tmp/prof 2>&1 | $F | grep -E "mfu|step_s_pip"
mkdir -p $OUT/hlo && cp /tmp/hlo/*train_step*after_optimizations.txt $OUT/hlo/
python3 benchmarks/trace_summary.py /tmp/prof --top 60 --json $OUT/profile_124m_ln2d.json > /dev/null
patch -p1 < benchmarks/h100/patches/mlp_tokens_features.patch
echo "== + MLP 2d"
$B --config=$C/gpt2_124m.py --tag=124m-b32-ln2d-mlp2d 2>&1 | $F | grep -E "mfu|step_s_pip"
$B --config=$C/gpt2_350m.py --tag=350m-b32-ln2d-mlp2d 2>&1 | $F | grep -E "mfu|step_s_pip"
$B --config=$C/gpt2_124m.py --config.data.batch_size=64 --tag=124m-b64-ln2d-mlp2d 2>&1 | $F | grep -E "mfu|step_s_pip|peak_mem"
$B --config=$C/gpt2_124m.py --config.model.use_bias=false --tag=124m-b32-ln2d-mlp2d-nobias 2>&1 | $F | grep -E "mfu|step_s_pip"
$B --config=$C/gpt2_350m.py --config.model.use_bias=false --tag=350m-b32-ln2d-mlp2d-nobias 2>&1 | $F | grep -E "mfu|step_s_pip|peak_mem"
