"""Does the best learning rate move with the horizon? The CPU study (scaling_cpu.py) tunes each
size's rate at its shortest horizon (`scaling.lr_grid` at the size's smallest budget); this
tunes two of its sizes, widths 16 and 28 (21k and 53k non-embedding parameters, trained at
every one of its budgets from 8e10 to 2.5e12), again at its longest horizon, 2.5e12 FLOPs: the
same trials, 0.5, 1 and 2 times the same rule's rate, now 31x longer.

    python -m experiments.sweep --config=experiments/configs/lr_horizon_cpu.py \
        --workdir=runs/lr_horizon_cpu --workers=2

Compare its `lr_choice.json` with the CPU study's. The plan places two sizes around
sqrt(C / (6 tokens_per_param)) = 33k, a ratio of 2.52 apart: widths 16 and 28 exactly.
"""

from experiments.configs import scaling_cpu


def get_config():
  c = scaling_cpu.get_config()
  s = c.scaling
  s.budgets = (2.5e12,)  # the study's longest horizon
  s.sizes_per_budget = 2
  s.tokens_per_param = 378.0  # centres the two sizes on widths 16 and 28
  s.size_ratio = 2.52
  s.noise_sizes, s.noise_seeds = (), ()
  return c
