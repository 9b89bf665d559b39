"""Command-line entry points (absl) and their configs: wiring only."""
