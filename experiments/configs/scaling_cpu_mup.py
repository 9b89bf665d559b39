"""The CPU scaling study (scaling_cpu.py) under μP: every size trains at one learning rate and
output multiplier, tuned once at the base width, instead of three learning-rate trials per size.

    make scaling-cpu SCALING_CONFIG=experiments/configs/scaling_cpu_mup.py \
      SCALING_DIR=runs/scaling_cpu_mup

The grid, corpus, method (cooldown branches) and family are scaling_cpu.py's. The base width is
32 (2 heads of 16; the study's widths are 1/8 to 2.4 times it). LEARNING_RATE and
OUTPUT_MULTIPLIER are the best of 10 runs at that width, 759 steps each (a warmup-stable-decay
run, as a branch trains), learning rates 2.2e-3 to 8.7e-3 and alpha 1 to 64:
`python -m benchmarks.mup_base_tuning` (benchmarks/results/mup_base_tuning_cpu.json).
No seed repeats: the per-size study's seed noise (results/scaling_cpu) is the comparison's.
"""

from experiments.configs import scaling_cpu

LEARNING_RATE = 8.7e-3
OUTPUT_MULTIPLIER = 16.0


def get_config():
  c = scaling_cpu.get_config()
  c.optim.learning_rate = LEARNING_RATE
  c.model.mup_output_multiplier = OUTPUT_MULTIPLIER
  s = c.scaling
  s.mup_base_width = 32
  s.lr_power = 0.0
  s.lr_grid = ()
  s.noise_sizes = ()
  s.noise_seeds = ()
  return c
