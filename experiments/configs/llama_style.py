"""The modern decoder recipe on tiny Shakespeare: Llama's blocks at the classic recipe's size.

RMSNorm, SwiGLU (hidden 384, ~8/3 x 128 rounded up to a multiple of 128), rotary positions,
grouped-query attention (4 query heads, 2 KV heads), no biases, untied head: 820,352
parameters against the GPT-2 blocks' 817,920 in `shakespeare_char.py`, whose data, batch,
steps and optimizer it keeps (4 layers, width 128, context 64, batch 12, 2000 steps, AdamW 1e-3,
100 warmup steps, cosine to 1e-4).

    python -m experiments.train --config=experiments/configs/llama_style.py \
        --workdir=runs/llama_style
    python -m experiments.export_hf --workdir=runs/llama_style --out_dir=runs/llama_style_hf

The export loads in `transformers` as LlamaForCausalLM (tests/convert/test_hf.py).

Result on the 2-core CPU development machine (float32): eval loss 1.699 over the whole
validation split (train 1.541) in ~3 minutes, against 1.883 for the GPT-2 blocks at 1.2x its
tokens/s; with Muon (`--config.optim.name=muon --config.optim.learning_rate=0.02
--config.optim.adam_learning_rate=0.001`) 1.594. Side by side: benchmarks/README.md ("Recipes";
`python -m benchmarks.recipes`).
"""

from experiments.configs import shakespeare_char


def use_blocks(m) -> None:
  """Gives `m` (a config.model) Llama's blocks: RMSNorm, SwiGLU, rotary positions, no biases,
  an untied head (its mlp_dim and KV heads are the caller's)."""
  m.position = "rotary"
  m.norm = "rmsnorm"
  m.mlp = "swiglu"
  m.use_bias = False
  m.tie_embeddings = False


def get_config():
  c = shakespeare_char.get_config()
  use_blocks(c.model)
  c.model.mlp_dim = 384
  c.model.num_kv_heads = 2
  return c
