from benchmarks import train_step
from lm.data import token_cache


def test_synthetic_data_of_a_char_config_has_the_trained_vocabulary(tiny_config):
  trained = token_cache.tokenized_data(tiny_config.data).tokenizer.vocab_size
  assert train_step.synthetic_vocab_size(tiny_config.data) == trained < 100
  tiny_config.data.tokenizer = "sentencepiece"
  assert train_step.synthetic_vocab_size(tiny_config.data) == tiny_config.data.vocab_size
