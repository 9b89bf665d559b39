"""A sampling prompt as token ids: the characters a character vocabulary lacks named, with their
counts, in one line and left out (the model never saw [UNK]); an empty prompt begins where a
document of the training data begins, after the end-of-text token, where the tokenizer has one.
"""

from __future__ import annotations

import logging

from lm.data.tokenizer import CharTokenizer, Tokenizer

log = logging.getLogger(__name__)


def encode(tok: Tokenizer, text: str) -> list[int]:
  """The ids of `text`; the characters `tok` lacks (a character vocabulary) are dropped and
  logged in one warning line, each with its count."""
  if not isinstance(tok, CharTokenizer):
    return tok.encode(text)
  lacking = tok.lacks(text)
  if lacking:
    count = sum(lacking.values())
    log.warning(
      "prompt has %d character%s the tokenizer lacks, dropped: %s",
      count,
      "" if count == 1 else "s",
      ", ".join(f"{c!r} x{n}" for c, n in lacking.most_common()),
    )
  return tok.encode(text, drop_unknown=True)


def start(tok: Tokenizer | None) -> list[int]:
  """What an empty prompt continues: the end-of-text id, after which every document of the
  training data begins; ValueError where there is none (a character vocabulary)."""
  if tok is None or tok.eos_id is None:
    raise ValueError(
      "the prompt is empty (or holds only characters the tokenizer lacks) and the tokenizer "
      "has no end-of-text token to begin a text from: give a prompt of at least one token "
      "(--prompt's default is a newline)"
    )
  return [tok.eos_id]
