# Ninth H100 run (prepared in sessions 6 and 7, which had no GPU): each lever A/B in one run.
# Part 1: the current tree (biases folded into the GEMMs as cuBLASLt BIAS / BIAS_GELU_AUX
# epilogues with float32 bias gradients; GELU under jax.checkpoint), the same with that change
# reverse-applied (the session-6 tree), and scan over layers. Part 2 (`bash gpu_sweep_9.sh 2`):
# the prepared patches (LayerNorm under jax.checkpoint, LayerNorm with a closed-form backward,
# one-pass logsumexp) and larger batches.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
B="python3 -m experiments.benchmark --steps=15 --warmup=3 --out=$OUT/results.jsonl"
C=experiments/configs
P=benchmarks/h100/patches
run() { set -- $1; $B --config=$C/$@ 2>&1 | grep -v "^[IW][0-9]" | grep -E "compile_s|mfu|step_s_pip|peak_mem" | tr '\n' ' '; echo " <- $*"; }
if [ "${1:-1}" = 1 ]; then
  run "gpt2_124m.py --tag=124m-b32-epilogue --profile_dir=/tmp/prof9"
  python3 benchmarks/trace_summary.py /tmp/prof9 --top 40 --json $OUT/profile_124m_b32_epilogue.json | tail -8
  run "gpt2_350m.py --tag=350m-b32-epilogue"
  run "gpt2_124m.py --config.model.scan_layers=true --tag=124m-b32-scan"
  run "gpt2_350m.py --config.model.scan_layers=true --tag=350m-b32-scan"
  patch -R -p1 < $P/bias_epilogue.patch
  run "gpt2_124m.py --tag=124m-b32-before-epilogue"
  run "gpt2_350m.py --tag=350m-b32-before-epilogue"
  patch -p1 < $P/bias_epilogue.patch
else
  run "gpt2_124m.py --config.data.batch_size=64 --tag=124m-b64-epilogue"
  run "gpt2_350m.py --config.data.batch_size=48 --tag=350m-b48-epilogue"
  patch -p1 < $P/layernorm_checkpoint.patch
  run "gpt2_124m.py --tag=124m-b32-lnckpt"
  run "gpt2_350m.py --tag=350m-b32-lnckpt"
  patch -R -p1 < $P/layernorm_checkpoint.patch
  patch -p1 < $P/layernorm_custom_vjp.patch
  run "gpt2_124m.py --tag=124m-b32-lnvjp"
  run "gpt2_350m.py --tag=350m-b32-lnvjp"
  patch -R -p1 < $P/layernorm_custom_vjp.patch
  patch -p1 < $P/logsumexp_one_pass.patch
  run "gpt2_124m.py --tag=124m-b32-lse1"
  run "gpt2_350m.py --tag=350m-b32-lse1"
  patch -R -p1 < $P/logsumexp_one_pass.patch
fi
