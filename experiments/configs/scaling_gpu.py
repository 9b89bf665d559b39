"""IsoFLOP scaling sweep on one GPU: 5 budgets over 2 decades (1e15 to 1e17 FLOPs) x 5 sizes.

LM1B (TFDS, prepared on first use; needs internet once), sentencepiece 32k, context 512,
bfloat16. Models follow a fixed aspect ratio d_model / layers = 32 with head size 32, from
~0.8M to ~100M non-embedding parameters; batch and learning rate follow the explicit rules
below. The smallest model of the largest budget reads ~1.9B tokens, about two passes over
LM1B; every other run reads less.

    python -m experiments.sweep --config=experiments/configs/scaling_gpu.py \
        --workdir=runs/scaling_gpu
    python -m experiments.fit_scaling --results=runs/scaling_gpu/results.csv \
        --plots_dir=runs/scaling_gpu/plots

7.2e17 FLOPs under 6N, 1.4e18 counting every matmul (the 32k-vocabulary head dominates the
small models): ~1.3 hours on one H100 at 30% MFU, longer where small models fall short of
it. Not yet run.
"""

from experiments.configs import base


def get_config():
  c = base.get_config()
  c.data.dataset = "lm1b"
  c.data.text_key = "text"
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.tokenizer = "sentencepiece"
  c.data.vocab_size = 32768
  c.data.tokenizer_train_chars = 20_000_000
  c.data.seq_len = 512
  c.model.max_seq_len = 512
  c.data.batch_size = 64
  c.model.dropout = 0.0
  c.execution.param_dtype = "float32"
  c.execution.compute_dtype = "bfloat16"
  c.execution.attention_impl = "auto"
  c.optim.learning_rate = 1.3e-3   # at 1M params; see scaling.lr_power
  c.optim.schedule = "cosine"      # decayed over each run's own length (Hoffmann et al.)
  c.optim.final_lr_ratio = 0.1
  c.train.log_every = 100
  c.train.eval_batches = 50
  c.train.checkpoint_every = 2000
  s = c.scaling
  s.budgets = (1e15, 3e15, 1e16, 3e16, 1e17)
  s.sizes_per_budget = 5
  s.size_ratio = 10.0
  s.tokens_per_param = 20.0
  s.flops_convention = "6N"
  s.params_convention = "non_embedding"
  s.rule = "aspect_ratio"
  s.aspect_ratio = 32.0
  s.head_dim = 32
  s.max_num_layers = 32
  s.lr_ref_params = 1e6            # lr ~ N^-0.13, close to Kaplan et al.'s LR(N) fit
  s.lr_power = 0.13
  s.batch_ref_budget = 1e15        # batch ~ C^0.25: 64 sequences at 1e15, 202 at 1e17
  s.batch_power = 0.25
  s.warmup_fraction = 0.05
  s.min_steps = 200
  return c
