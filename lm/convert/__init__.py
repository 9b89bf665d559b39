"""Hugging Face import and export of weights, configs and tokenizers."""
