"""Benchmark scripts: training-step throughput, decoding, the H100 compile without a GPU."""
