python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import jax, flax, optax; print(jax.__version__, flax.__version__, optax.__version__, jax.devices())"
B="python3 -m experiments.benchmark --steps=15 --warmup=3 --out=$OUT/results.jsonl"
C=experiments/configs
$B --config=$C/gpt2_124m.py --tag=124m-b32-cudnn 2>&1 | grep -v "^[IW][0-9]"
$B --config=$C/gpt2_124m.py --config.model.attention_impl=xla --tag=124m-b32-xla 2>&1 | grep -v "^[IW][0-9]" | tail -9
$B --config=$C/gpt2_124m.py --config.model.compute_dtype=float32 --config.model.attention_impl=xla --tag=124m-b32-f32 2>&1 | grep -v "^[IW][0-9]" | tail -9
$B --config=$C/gpt2_124m.py --config.data.batch_size=64 --tag=124m-b64-cudnn 2>&1 | grep -v "^[IW][0-9]" | tail -9
$B --config=$C/gpt2_124m.py --config.data.batch_size=64 --config.model.remat=dots --tag=124m-b64-dots 2>&1 | grep -v "^[IW][0-9]" | tail -9
$B --config=$C/gpt2_350m.py --config.data.batch_size=32 --tag=350m-b32-cudnn 2>&1 | grep -v "^[IW][0-9]" | tail -9
$B --config=$C/gpt2_350m.py --config.data.batch_size=32 --config.model.remat=dots --tag=350m-b32-dots 2>&1 | grep -v "^[IW][0-9]" | tail -9
