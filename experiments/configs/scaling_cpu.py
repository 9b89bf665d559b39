"""IsoFLOP scaling sweep on a 2-core CPU in under an hour: 3 budgets x 5-7 sizes.

The corpus is the Python standard library's own source (found at run time, no download):
its `*.py` files, character-level, ~31M characters, so no run repeats data (the largest run
reads 25M tokens). Models are 4-layer GPTs of width 16-96 (head size 8); tokens per run
follow C = (6N + attention) D with N the non-embedding parameters, around 100 tokens per
parameter.

    python -m experiments.sweep --config=experiments/configs/scaling_cpu.py \
        --workdir=runs/scaling_cpu --workers=2
    python -m experiments.fit_scaling --results=runs/scaling_cpu/results.csv \
        --plots_dir=runs/scaling_cpu/plots

Result (2026-11-23, 2-core development CPU, two one-core workers): 51m22s for the 18 runs;
Approach 3 a = 0.46 [0.25, 0.66], Approach 2 a = 0.71 [0.35, 0.83]. See README ("Result on
CPU") and results/scaling_cpu/.
"""

from experiments.configs import base, stdlib_corpus


def get_config():
  c = base.get_config()
  stdlib_corpus.use(c)
  c.data.seq_len = 128
  c.model.max_seq_len = 128
  c.data.batch_size = 16
  c.data.num_threads = 1
  c.model.dropout = 0.0
  c.optim.learning_rate = 3e-3
  c.optim.schedule = "cosine"      # decayed over each run's own length (Hoffmann et al.)
  c.optim.final_lr_ratio = 0.1
  c.train.log_every = 50
  c.train.steps_per_dispatch = 10  # the same steps, fewer dispatches (benchmarks/cpu_breakdown.py)
  c.train.eval_batches = 50
  c.train.checkpoint_every = 1000
  s = c.scaling
  s.budgets = (5e11, 2e12, 8e12)
  s.sizes_per_budget = 7           # 5-7 distinct widths (multiples of 8) per budget
  s.size_ratio = 16.0
  s.tokens_per_param = 100.0       # the first sweep's optima were at ~60-200 (see README)
  s.flops_convention = "6N+attn"   # attention is ~0.3-0.9 x 6N at these widths and context 128
  s.params_convention = "non_embedding"
  s.rule = "fixed_depth"
  s.fixed_num_layers = 4
  s.head_dim = 8
  s.max_num_layers = 32            # widths up to 32 * head_dim
  s.warmup_fraction = 0.05
  s.min_steps = 100
  return c
