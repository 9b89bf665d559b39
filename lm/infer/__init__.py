"""What reads a finished run: sampling with a KV cache, evaluation, fill-mask."""
