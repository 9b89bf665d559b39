"""GPT-2 medium (350M) shapes: 24 layers, width 1024, 16 heads, context 1024, bf16 compute.

    python -m benchmarks.train_step --config=experiments/configs/gpt2_350m.py

Result: see benchmarks/README.md.
"""

from experiments.configs import gpt2_124m


def get_config():
  c = gpt2_124m.get_config()
  c.model.num_layers = 24
  c.model.num_heads = 16
  c.model.d_model = 1024
  c.optim.learning_rate = 3e-4
  return c
