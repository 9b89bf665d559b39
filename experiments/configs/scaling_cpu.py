"""IsoFLOP scaling sweep on a 2-core CPU in about an hour: 3 budgets x 5 sizes.

The corpus is the Python standard library's own source (found at run time, no download):
its `*.py` files, character-level, ~31M characters, so no run repeats data (the largest run
reads 17M tokens). Models are 4-layer GPTs of width 24-120 (head size 8); tokens per run
follow C = 6 N D with N the non-embedding parameters.

    python -m experiments.sweep --config=experiments/configs/scaling_cpu.py \
        --workdir=runs/scaling_cpu
    python -m experiments.fit_scaling --results=runs/scaling_cpu/results.csv \
        --plots_dir=runs/scaling_cpu/plots

Result (2026-11-23, 2-core development CPU, shared with other jobs): 57m44s for the 15 runs;
Approach 3 gives a = 0.49 [0.22, 0.64]; Approach 2 is not fittable from this grid (two budgets'
minima lie below the smallest size). See README ("Result on CPU") and results/scaling_cpu/.
"""

import sysconfig

from experiments.configs import base


def get_config():
  c = base.get_config()
  c.data.dataset = "local"
  c.data.path = sysconfig.get_paths()["stdlib"]
  c.data.include = "*.py"
  c.data.exclude = ("site-packages/*", "*/__pycache__/*")
  c.data.tokenizer = "char"
  c.data.data_dir = "runs/data"
  c.data.seq_len = 128
  c.model.max_seq_len = 128
  c.data.batch_size = 16
  c.data.num_threads = 1
  c.model.dropout = 0.0
  c.optim.learning_rate = 3e-3
  c.optim.schedule = "cosine"      # decayed over each run's own length (Hoffmann et al.)
  c.optim.final_lr_ratio = 0.1
  c.train.log_every = 50
  c.train.eval_batches = 20
  c.train.checkpoint_every = 1000
  s = c.scaling
  s.budgets = (5e11, 2e12, 8e12)
  s.sizes_per_budget = 5
  s.size_ratio = 8.0
  s.tokens_per_param = 20.0
  s.flops_convention = "6N"
  s.params_convention = "non_embedding"
  s.rule = "fixed_depth"
  s.fixed_num_layers = 4
  s.head_dim = 8
  s.max_num_layers = 32            # widths up to 32 * head_dim
  s.warmup_fraction = 0.05
  s.min_steps = 100
  return c
