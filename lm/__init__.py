"""lm: train, sample, evaluate and scale Transformer language models in JAX/Flax."""
