# Fourth H100 sweep: [B,T,3,N,H] QKV layout restored, fused cross-entropy, biases on/off.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
B="python3 -m experiments.benchmark --steps=15 --warmup=3 --out=$OUT/results.jsonl"
C=experiments/configs
F="grep -v ^[IW][0-9]"
L="--config.model.logits_dtype=bfloat16"
$B --config=$C/gpt2_124m.py $L --tag=124m-b32-fusedCE-btcnh --profile_dir=/tmp/prof124 2>&1 | $F | tail -9
python3 benchmarks/trace_summary.py /tmp/prof124 --top 30 --json $OUT/profile_124m.json
$B --config=$C/gpt2_124m.py $L --config.model.use_bias=false --tag=124m-b32-fusedCE-nobias 2>&1 | $F | tail -9
$B --config=$C/gpt2_124m.py $L --config.data.batch_size=64 --tag=124m-b64-fusedCE-btcnh 2>&1 | $F | tail -9
$B --config=$C/gpt2_350m.py $L --tag=350m-b32-fusedCE-btcnh 2>&1 | $F | tail -9
$B --config=$C/gpt2_350m.py $L --config.model.use_bias=false --tag=350m-b32-fusedCE-nobias 2>&1 | $F | tail -9
