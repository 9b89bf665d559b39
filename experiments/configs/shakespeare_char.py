"""Character-level GPT on tiny Shakespeare: the classic small CPU recipe.

4 layers, width 128, 4 heads, context 64, batch 12, 2000 steps, no dropout, AdamW at 1e-3
with 100 warmup steps and cosine decay to 1e-4.

    python -m experiments.train --config=experiments/configs/shakespeare_char.py \
        --workdir=runs/shakespeare_char

Result on the 2-core CPU development machine (float32): see benchmarks/README.md.
"""

from experiments.configs import base


def get_config():
  c = base.get_config()
  c.data.dataset = "local"
  c.data.path = "data/tiny_shakespeare.txt"
  c.data.tokenizer = "char"
  c.data.data_dir = "data"  # under $LM_CACHE_DIR (~/.cache/lm): base.py
  c.data.seq_len = 64
  c.model.max_seq_len = 64
  c.data.batch_size = 12
  c.model.num_layers = 4
  c.model.num_heads = 4
  c.model.d_model = 128
  c.model.dropout = 0.0
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 100
  c.optim.schedule = "cosine"
  c.optim.final_lr_ratio = 0.1
  c.optim.weight_decay = 0.1
  c.train.steps = 2000
  c.train.steps_per_dispatch = 10  # the same steps, fewer dispatches (benchmarks/cpu_breakdown.py)
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.checkpoint_every = 500
  return c
