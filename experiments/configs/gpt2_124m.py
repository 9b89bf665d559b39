"""GPT-2 small (124M) shapes: 12 layers, width 768, 12 heads, context 1024, bf16 compute.

Vocabulary 50257 (GPT-2's BPE size; `data.vocab_size` here) padded to 50304, a multiple of 128.
Throughput on one H100 (synthetic data):

    python -m benchmarks.train_step --config=experiments/configs/gpt2_124m.py

Result: see benchmarks/README.md.
"""

from experiments.configs import base


def get_config():
  c = base.get_config()
  c.data.tokenizer = "sentencepiece"
  c.data.vocab_size = 50257
  c.data.seq_len = 1024
  c.data.batch_size = 32
  c.model.num_layers = 12
  c.model.num_heads = 12
  c.model.d_model = 768
  c.model.max_seq_len = 1024
  c.model.vocab_multiple = 128
  c.execution.compute_dtype = "bfloat16"
  c.execution.attention_impl = "cudnn"
  c.execution.logits_dtype = "bfloat16"
  c.optim.learning_rate = 6e-4
  c.optim.warmup_steps = 700
  c.optim.b2 = 0.95
  c.train.steps = 20_000
  return c
