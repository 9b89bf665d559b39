"""Our tokenizers as Hugging Face tokenizer files, and reading them back.

A character vocabulary becomes a `tokenizer.json` (a word-level model over the characters, a
pre-tokenizer that splits every character, the special tokens) that `transformers` loads as a
PreTrainedTokenizerFast and `lm.data.hf_tokenizer` reads, both encoding as CharTokenizer does.
A SentencePiece model is written as it is, `tokenizer.model`, with a `tokenizer_config.json`
naming LlamaTokenizer (no start or end token added, a space before the text only where the
model adds one): we read it back with SentencePiece itself; `transformers` converts it with
its own Llama converter, which leaves out SentencePiece's normalisation, so it encodes alike
only a model that keeps text as it is (ours since they round-trip; older ones collapsed runs
of spaces and dropped newlines). A Hugging Face tokenizer is saved as it is.
"""

from __future__ import annotations

import json

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, processors

from lm.data import hf_tokenizer
from lm.data.specials import SPECIAL_TOKENS
from lm.data.tokenizer import CharTokenizer, SentencePieceTokenizer, Tokenizer
from lm.runtime import paths

SPM_MODEL = "tokenizer.model"  # the name LlamaTokenizer reads
_SPECIAL_NAMES = {
  "[PAD]": "pad_token",
  "[MASK]": "mask_token",
  "[CLS]": "cls_token",
  "[SEP]": "sep_token",
}


def _special_config(special_ids: dict[str, int]) -> dict[str, str]:
  return {_SPECIAL_NAMES[t]: t for t in SPECIAL_TOKENS if t in special_ids}


def from_chars(tok: CharTokenizer, wrap: bool = False) -> hf_tokenizer.HFTokenizer:
  """A Hugging Face tokenizer with the ids of a character vocabulary; with `wrap` (an encoder's)
  `transformers` adds [CLS] ... [SEP] around a text, as BertTokenizer does and as our
  classification data wraps it (our `encode` adds nothing)."""
  vocab = {c: i for i, c in enumerate(tok.chars)} | tok.special_ids
  hf = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token=hf_tokenizer.UNK))
  hf.pre_tokenizer = pre_tokenizers.Split(tokenizers.Regex(r"[\s\S]"), behavior="isolated")
  hf.decoder = decoders.Fuse()
  if wrap:
    hf.post_processor = processors.TemplateProcessing(
      single="[CLS] $A [SEP]",
      pair="[CLS] $A [SEP] $B [SEP]",
      special_tokens=[(t, tok.special_ids[t]) for t in ("[CLS]", "[SEP]")],
    )
  hf.add_special_tokens(
    [tokenizers.AddedToken(t, special=True, normalized=False) for t in tok.special_ids]
  )
  return hf_tokenizer.HFTokenizer(
    hf, {"tokenizer_class": "PreTrainedTokenizerFast", **_special_config(tok.special_ids)}
  )


def save(tok: Tokenizer, directory: str, wrap: bool = False) -> None:
  """Writes the Hugging Face files of `tok` to `directory`; `wrap`: see `from_chars`."""
  if isinstance(tok, CharTokenizer):
    tok = from_chars(tok, wrap)
  if isinstance(tok, hf_tokenizer.HFTokenizer):
    tok.save(directory)
    return
  if not isinstance(tok, SentencePieceTokenizer):
    raise ValueError(f"a {type(tok).__name__} has no Hugging Face tokenizer files")
  root = paths.run_path(directory)
  paths.copy_file(tok.model_path, root / SPM_MODEL)
  sp = tok.sp
  config = {
    "tokenizer_class": "LlamaTokenizer",
    "add_bos_token": False,
    "add_eos_token": False,
    "add_prefix_space": sp.normalize("a").startswith("\u2581"),  # the model's dummy space
    "bos_token": None,
    "eos_token": sp.id_to_piece(sp.eos_id()) if sp.eos_id() >= 0 else None,
    "unk_token": sp.id_to_piece(sp.unk_id()),
    "legacy": True,
    **_special_config(tok.special_ids),
  }
  (root / hf_tokenizer.CONFIG_FILE).write_text(json.dumps(config, indent=2))


def load(directory: str) -> Tokenizer | None:
  """The tokenizer of a Hugging Face directory: `lm.data.hf_tokenizer`'s files, else a
  SentencePiece `tokenizer.model`; None if it has neither. ValueError names a file that is
  truncated or garbled."""
  tok = hf_tokenizer.load(directory)
  model = paths.run_path(directory) / SPM_MODEL
  if tok is None and model.exists():
    try:
      tok = SentencePieceTokenizer(str(model))
    except RuntimeError as e:
      raise ValueError(
        f"{model} is not a SentencePiece model ({e}): truncated or corrupted?"
      ) from e
  return tok
