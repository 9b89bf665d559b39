# Eighth H100 run: final table with LayerNorm on [tokens, features]; separate q/k/v GEMMs A/B
# (benchmarks/h100/patches/qkv_separate_gemms.patch).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
B="python3 -m experiments.benchmark --steps=15 --warmup=3 --out=$OUT/results.jsonl"
C=experiments/configs
F="grep -v ^[IW][0-9]"
for args in "gpt2_124m.py --config.data.batch_size=64 --config.model.use_bias=false --tag=124m-b64-nobias" \
            "gpt2_350m.py --config.data.batch_size=64 --config.model.remat=dots --tag=350m-b64-dots" \
            "gpt2_350m.py --config.data.batch_size=48 --tag=350m-b48" ; do
  set -- $args; $B --config=$C/$@ 2>&1 | $F | grep -E "mfu|step_s_pip|peak_mem" | tr '\n' ' '; echo " <- $args"
done
patch -p1 < benchmarks/h100/patches/qkv_separate_gemms.patch
for args in "gpt2_124m.py --tag=124m-b32-qkv3" "gpt2_350m.py --tag=350m-b32-qkv3"; do
  set -- $args; $B --config=$C/$@ 2>&1 | $F | grep -E "mfu|step_s_pip|peak_mem" | tr '\n' ' '; echo " <- $args"
done
