"""What a model is: its config, layers, attention, blocks, heads, numerics and counts."""
