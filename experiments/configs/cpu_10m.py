"""A ~10M-parameter GPT for CPU throughput work: 6 layers, width 384, 6 heads, context 256.

    python -m benchmarks.train_step --config=experiments/configs/cpu_10m.py --vocab_size=8192

Result: see benchmarks/README.md (CPU levers).
"""

from experiments.configs import base


def get_config():
  c = base.get_config()
  c.data.tokenizer = "sentencepiece"
  c.data.vocab_size = 8192
  c.data.seq_len = 256
  c.data.batch_size = 8
  c.model.num_layers = 6
  c.model.num_heads = 6
  c.model.d_model = 384
  c.model.max_seq_len = 256
  c.train.steps = 5000
  return c
