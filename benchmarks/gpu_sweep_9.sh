# Ninth H100 run (prepared in sessions 6-8, which had no GPU), three device calls of about five
# minutes: `bash benchmarks/gpu_sweep_9.sh 1` (then 2, 3).
# Part 1: the tree (biases in the cuBLASLt BIAS / BIAS_GELU_AUX epilogues, LayerNorm with a
#   closed-form backward) at both sizes, with a profile; then the tree with both prepared
#   patches (one-pass logsumexp, three QKV GEMMs), the candidate for the issue-7 targets.
# Part 2: each change in the tree reverse-applied (LayerNorm by autodiff; the session-6 bias
#   adds), and the tree without biases.
# Part 3: each prepared patch alone, and scan over layers.
# CPU rehearsal of the script itself (tiny shapes, XLA attention, 2 steps; the tree is restored
# after each part): `REHEARSE=1 PY=.venv/bin/python OUT=/tmp/sweep bash benchmarks/gpu_sweep_9.sh 1`.
if [ -n "$REHEARSE" ]; then
  STEPS="--steps=2 --warmup=1"
  SHAPE="--config.model.num_layers=2 --config.model.d_model=64 --config.model.num_heads=2
    --config.data.seq_len=64 --config.model.max_seq_len=64 --config.data.batch_size=4
    --config.model.attention_impl=xla"
else
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
  STEPS="--steps=15 --warmup=3"
fi
PY=${PY:-python3}
B="$PY -m experiments.benchmark $STEPS --out=$OUT/results.jsonl"
C=experiments/configs
P=benchmarks/h100/patches
# A run line's later overrides (batch 64, no biases) win over the rehearsal's shape.
run() { set -- $1; $B --config=$C/$1 $SHAPE "${@:2}" 2>&1 | grep -v "^[IW][0-9]" | grep -E "compile_s|mfu|step_s_pip|peak_mem|Error" | tr '\n' ' '; echo " <- $*"; }
case "${1:-1}" in
1)
  run "gpt2_124m.py --tag=124m-b32-tree --profile_dir=/tmp/prof9"
  $PY benchmarks/trace_summary.py /tmp/prof9 --top 40 --json $OUT/profile_124m_b32_tree.json | tail -8
  run "gpt2_124m.py --config.data.batch_size=64 --tag=124m-b64-tree"
  run "gpt2_350m.py --tag=350m-b32-tree"
  patch -p1 < $P/logsumexp_one_pass.patch && patch -p1 < $P/qkv_three_gemms.patch
  run "gpt2_124m.py --tag=124m-b32-lse1-qkv3"
  run "gpt2_124m.py --config.data.batch_size=64 --tag=124m-b64-lse1-qkv3"
  run "gpt2_350m.py --tag=350m-b32-lse1-qkv3"
  patch -R -p1 < $P/qkv_three_gemms.patch && patch -R -p1 < $P/logsumexp_one_pass.patch
  ;;
2)
  patch -R -p1 < $P/layernorm_custom_vjp.patch
  run "gpt2_124m.py --tag=124m-b32-ln-autodiff"
  run "gpt2_350m.py --tag=350m-b32-ln-autodiff"
  patch -p1 < $P/layernorm_custom_vjp.patch
  patch -R -p1 < $P/bias_epilogue.patch
  run "gpt2_124m.py --tag=124m-b32-no-epilogue"
  run "gpt2_350m.py --tag=350m-b32-no-epilogue"
  patch -p1 < $P/bias_epilogue.patch
  run "gpt2_350m.py --config.model.use_bias=false --tag=350m-b32-tree-nobias"
  ;;
3)
  patch -p1 < $P/logsumexp_one_pass.patch
  run "gpt2_124m.py --tag=124m-b32-lse1"
  run "gpt2_350m.py --tag=350m-b32-lse1"
  patch -R -p1 < $P/logsumexp_one_pass.patch
  patch -p1 < $P/qkv_three_gemms.patch
  run "gpt2_124m.py --tag=124m-b32-qkv3"
  run "gpt2_350m.py --tag=350m-b32-qkv3"
  patch -R -p1 < $P/qkv_three_gemms.patch
  run "gpt2_124m.py --config.model.scan_layers=true --tag=124m-b32-scan"
  ;;
esac
