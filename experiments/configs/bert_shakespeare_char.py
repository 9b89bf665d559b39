"""Character-level BERT (masked LM) on tiny Shakespeare: the encoder's small CPU recipe.

4 post-LN layers, width 128, 4 heads, context 64, batch 32, 2000 steps, exact GELU, BERT's
15% / 80-10-10 masking drawn inside the step, AdamW at 1e-3 with warmup and cosine decay.

    python -m experiments.train --config=experiments/configs/bert_shakespeare_char.py \\
        --workdir=runs/bert_shakespeare_char
    python -m experiments.fill_mask --workdir=runs/bert_shakespeare_char \\
        --text="ROMEO: I lo[MASK]e thee"

Reports MLM loss and accuracy on the selected positions (train and validation).
"""

from experiments.configs import shakespeare_char


def get_config():
  c = shakespeare_char.get_config()
  c.model.kind = "encoder"
  c.model.norm_position = "post"
  c.model.activation = "gelu"
  c.model.layer_norm_eps = 1e-12
  c.data.batch_size = 32
  return c
