"""IsoFLOP scaling study on a 2-core CPU in under an hour: 7 budgets over 1.5 decades x 7-9
sizes of Llama-style models, by cooldown branches with a learning rate tuned per size.

    make scaling-cpu        # sweep, fit with a prediction at 4x the largest budget, verify, refit

With `--config.scaling.eval_tasks='("corpus_next_line",)'` each run is also scored on choosing
a held-out line's true next line among four (docs/scaling.md, Task accuracy; the eval extra).

The corpus is the Python standard library's own source (stdlib_corpus.py: found at run time,
no download), character level. Models are 4-layer decoders with llama_style.py's blocks
(RMSNorm, SwiGLU, rotary positions, no biases, untied head) of width 4 to 128 in steps of 4,
each with 2 heads: at context 128 a CPU step's cost grows with the number of heads far more
than with their width (4-layer width 96 at batch 16: 515 ms a step with 12 heads of 8, 170 ms
with 2 of 48, eval loss 1.975 / 1.987 after 400 steps; one core each). N counts the untied head
(non-embedding parameters); C = (6N + attention) D.

Method: one constant-learning-rate run per size and a 20% linear cooldown branched at each of
its budgets' horizons (`scaling.method='cooldown'`, Hägele et al. 2024). The learning rate
follows 3.5e-3 * (1e5 / N)^0.5 (smaller models train best at higher rates: after 500 steps
width 16 reached 2.19 at 1.2e-2 against 2.30 at 4e-3, width 64 2.07 at 4e-3 against 2.34 at
1.2e-2), and each size tries 0.5, 1 and 2 times it at its shortest horizon
(`scaling.lr_grid`). A first pass at 5e-3 chose the lowest of the three for 7 of 13 sizes.
Widths 16 (every budget) and 28 (5 budgets) train again with seeds 1 and 2
(`scaling.noise_sizes`, rows in seed_repeats.jsonl): 21% more training FLOPs.

Result (2026-12-06, 2-core development CPU, a clean clone, `make scaling-cpu`): 59m00s in all
on a busy machine (trials 21m51s, the chosen runs 24m21s, seed repeats 7m58s, verification
3m38s); Approach 2 a = 0.576 [0.465, 0.613], Approach 3 a = 0.529 [0.480, 0.623]; the backtest
picks the loss frontier E + k C^-gamma (0.21% off one budget ahead), whose forecast at 4x the
largest budget missed the run (3 seeds' mean) by +1.9%, inside its interval; at 10x by +5.9%,
or +1.7% at a learning rate lowered for the horizon (lr_horizon_power=0.2, not yet used by the
study's own runs). See results/scaling_cpu/README.md.
"""

from experiments.configs import base, llama_style, stdlib_corpus


def get_config():
  c = base.get_config()
  stdlib_corpus.use(c)
  c.data.seq_len = 128
  c.model.max_seq_len = 128
  c.data.batch_size = 16
  c.data.num_threads = 1
  llama_style.use_blocks(c.model)
  c.model.dropout = 0.0
  c.optim.learning_rate = 3.5e-3  # at lr_ref_params; scaled by lr_power, then tuned per size
  c.optim.final_lr_ratio = 0.1
  c.train.log_every = 50
  c.train.steps_per_dispatch = 10  # the same steps, fewer dispatches (benchmarks/cpu_breakdown.py)
  c.train.eval_batches = 50
  c.train.checkpoint_every = 100000  # the branch points' checkpoints are kept regardless
  s = c.scaling
  # 7 budgets half a step of 10^0.5 apart: the in-between ones are cooldown branches of the
  # same stable runs, so they add 24 grid points for 3% more training FLOPs than 4 budgets
  # (and narrowed Approach 3's interval of a from 0.37 to 0.18).
  s.budgets = (8e10, 1.4e11, 2.5e11, 4.5e11, 8e11, 1.4e12, 2.5e12)
  s.sizes_per_budget = 9  # 7-9 distinct widths per budget
  s.size_ratio = 16.0
  s.tokens_per_param = 80.0
  s.flops_convention = "6N+attn"
  s.params_convention = "non_embedding"
  s.rule = "fixed_depth"
  s.fixed_num_layers = 4
  s.width_step = 4  # every size has num_heads heads
  s.num_heads = 2
  s.mlp_ratio = 8 / 3
  s.ladder_size = 32  # widths up to 32 * 4
  s.lr_ref_params = 1e5
  s.lr_power = 0.5
  s.method = "cooldown"
  s.cooldown_fraction = 0.2
  s.cooldown_shape = "linear"
  s.lr_grid = (0.5, 1.0, 2.0)
  s.warmup_fraction = 0.05
  s.min_steps = 50
  s.noise_sizes = ("L4_d16", "L4_d28")  # 3 seeds at two sizes: the seed noise that floors a
  s.noise_seeds = (1, 2)  # forecast's interval (rows in seed_repeats.jsonl)
  return c
