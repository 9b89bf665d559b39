"""The corpus of the scaling studies: the Python standard library's own `*.py` files, found on
the machine that runs them (no download), character level, tokenised once into the token cache
under `data.data_dir`. Python 3.11's: 31.5M characters, 28.4M tokens in the train split and
3.2M in the validation split, a vocabulary of 512 with the specials."""

import sysconfig


def use(c) -> None:
  """Points `c.data` at the standard library's sources, character level."""
  c.data.dataset = "local"
  c.data.path = sysconfig.get_paths()["stdlib"]
  c.data.include = "*.py"
  c.data.exclude = ("site-packages/*", "*/__pycache__/*")
  c.data.decode_errors = "replace"  # 4 of its tests are latin-1 / KOI8-R on purpose
  c.data.tokenizer = "char"
  c.data.data_dir = "data"  # under $LM_CACHE_DIR (~/.cache/lm): base.py
