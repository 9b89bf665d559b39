"""Input: tokenizers, TFDS builders for local corpora, token caches and the grain pipeline."""
