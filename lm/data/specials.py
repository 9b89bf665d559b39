"""The special tokens MLM and classification need, and cutting text around them."""

from __future__ import annotations

import re
from collections.abc import Iterable

SPECIAL_TOKENS = ("[PAD]", "[MASK]", "[CLS]", "[SEP]")
UNK = "[UNK]"  # a character vocabulary's id for characters it lacks


def split_specials(text: str, specials: Iterable[str]) -> list[str]:
  """The text cut into pieces, each special token string a piece of its own."""
  pattern = "|".join(re.escape(t) for t in sorted(specials, key=len, reverse=True))
  if not pattern:
    return [text]
  return [p for p in re.split(f"({pattern})", text) if p]
