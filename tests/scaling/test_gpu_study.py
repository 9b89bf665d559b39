"""experiments/configs/scaling_gpu.py plans what its docstring says: 5 budgets over 2 decades by
the cooldown method with learning-rate trials, Llama's blocks, and no run that reads its local
corpus more than twice (with Python 3.11's vocabulary)."""

import os

from experiments.configs import scaling_gpu
from lm.data import local_text
from lm.scaling import grid, lr_search

VOCAB = 512  # the standard library's characters and the specials, padded to a multiple of 64


def test_the_gpu_study_fits_its_corpus():
  config = scaling_gpu.get_config()
  scaling, model = config.scaling, config.model
  assert len(scaling.budgets) >= 5 and max(scaling.budgets) / min(scaling.budgets) >= 100
  assert (scaling.method, len(scaling.lr_grid)) == ("cooldown", 3)
  assert (model.norm, model.mlp, model.position, model.use_bias, model.tie_embeddings) == (
    "rmsnorm",
    "swiglu",
    "rotary",
    False,
    False,
  )
  points = grid.plan_runs(config, VOCAB)
  for budget in scaling.budgets:  # none lost to min_steps, each a parabola's worth of sizes
    assert len({p.d_model for p in points if p.budget == budget}) >= 3, budget
  files = local_text.corpus_files(config.data.path, config.data.include, config.data.exclude)
  train_chars = (1 - config.data.validation_fraction) * sum(map(os.path.getsize, files))
  longest = max(r.tokens for r in lr_search.every_run(config, points))
  assert longest <= 2 * train_chars
