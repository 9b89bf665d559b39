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

A decoder's export names its end-of-text token as Hugging Face conventions expect (lm-eval's
`hf` backend and `generate` read it): `eos_token`, and `bos_token` the same token where the
tokenizer has no start token of its own (GPT-2's convention; every document of our training data
begins after the end-of-text token), in `tokenizer_config.json` and `special_tokens_map.json`;
`save` returns their ids for `config.json`. A character vocabulary has no end-of-text token: its
export adds `<|endoftext|>` at the first id past the vocabulary, one of the padded vocabulary's
ids that no text ever held (its logit only ever pushed down), else, where the padded vocabulary
has no spare id, it names [SEP], which a decoder's text never holds either. Either way the model
never learned what follows it: the log-likelihood of a first token after it is the model's guess
without context, not a learned start-of-text distribution.
"""

from __future__ import annotations

import json
from typing import Any

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, processors

from lm.data import hf_tokenizer
from lm.data.specials import SPECIAL_TOKENS
from lm.data.tokenizer import CharTokenizer, SentencePieceTokenizer, Tokenizer
from lm.runtime import paths

SPM_MODEL = "tokenizer.model"  # the name LlamaTokenizer reads
SPECIAL_MAP_FILE = "special_tokens_map.json"  # what transformers 4 reads besides the config
END_OF_TEXT = hf_tokenizer.EOS  # a character vocabulary's, GPT-2's name
_SPECIAL_NAMES = {
  "[PAD]": "pad_token",
  "[MASK]": "mask_token",
  "[CLS]": "cls_token",
  "[SEP]": "sep_token",
}
_CONFIG_IDS = ("bos_token", "eos_token", "pad_token")  # config.json's `<name>_id`s


def _special_config(special_ids: dict[str, int]) -> dict[str, str]:
  return {_SPECIAL_NAMES[t]: t for t in SPECIAL_TOKENS if t in special_ids}


def char_end_of_text(tok: CharTokenizer, vocab_size: int | None = None) -> int:
  """The id a character vocabulary's export names as its end of text in a model of `vocab_size`
  (padded) ids: the first id past the vocabulary where the model has it (None: no model bounds
  it), else [SEP]'s."""
  room = vocab_size is None or vocab_size > tok.vocab_size
  return tok.vocab_size if room else tok.special_ids["[SEP]"]


def from_chars(
  tok: CharTokenizer, wrap: bool = False, eos_id: int | None = None
) -> hf_tokenizer.HFTokenizer:
  """A Hugging Face tokenizer with the ids of a character vocabulary; with `wrap` (an encoder's)
  `transformers` adds [CLS] ... [SEP] around a text, as BertTokenizer does and as our
  classification data wraps it (our `encode` adds nothing). `eos_id` (`char_end_of_text`) is
  named as the end and the start of a text; past the vocabulary it is `<|endoftext|>`."""
  vocab = {c: i for i, c in enumerate(tok.chars)} | tok.special_ids
  if eos_id == tok.vocab_size:
    vocab[END_OF_TEXT] = tok.vocab_size
  hf = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token=hf_tokenizer.UNK))
  hf.pre_tokenizer = pre_tokenizers.Split(tokenizers.Regex(r"[\s\S]"), behavior="isolated")
  hf.decoder = decoders.Fuse()
  if wrap:
    hf.post_processor = processors.TemplateProcessing(
      single="[CLS] $A [SEP]",
      pair="[CLS] $A [SEP] $B [SEP]",
      special_tokens=[(t, tok.special_ids[t]) for t in ("[CLS]", "[SEP]")],
    )
  specials = [t for t, i in vocab.items() if i >= tok.num_ordinary]
  hf.add_special_tokens(
    [tokenizers.AddedToken(t, special=True, normalized=False) for t in specials]
  )
  config = {"tokenizer_class": "PreTrainedTokenizerFast", **_special_config(tok.special_ids)}
  if eos_id is not None:
    config |= dict.fromkeys(("bos_token", "eos_token"), hf.id_to_token(eos_id))
  return hf_tokenizer.HFTokenizer(hf, config)


def _with_ends(config: dict[str, Any], eos: str | None, bos: str | None = None) -> dict[str, Any]:
  """`config` naming `eos` as the end of a text and `bos` (default: `eos`) as its start, where it
  names none."""
  if eos is None:
    return config
  return {
    **config,
    "eos_token": config.get("eos_token") or eos,
    "bos_token": config.get("bos_token") or bos or eos,
  }


def _save_sentencepiece(tok: SentencePieceTokenizer, directory: str, wrap: bool) -> dict[str, Any]:
  """Writes `tokenizer.model` and the LlamaTokenizer config that adds nothing to a text; returns
  the config."""
  root = paths.run_path(directory)
  paths.copy_file(tok.model_path, root / SPM_MODEL)
  sp = tok.sp
  eos = sp.id_to_piece(sp.eos_id()) if sp.eos_id() >= 0 else None
  config = {
    "tokenizer_class": "LlamaTokenizer",
    "add_bos_token": False,
    "add_eos_token": False,
    "add_prefix_space": sp.normalize("a").startswith("\u2581"),  # the model's dummy space
    "bos_token": None,
    "eos_token": eos,
    "unk_token": sp.id_to_piece(sp.unk_id()),
    "legacy": True,
    **_special_config(tok.special_ids),
  }
  if not wrap:
    config = _with_ends(config, eos, sp.id_to_piece(sp.bos_id()) if sp.bos_id() >= 0 else None)
  (root / hf_tokenizer.CONFIG_FILE).write_text(json.dumps(config, indent=2))
  return config


def save(
  tok: Tokenizer, directory: str, wrap: bool = False, vocab_size: int | None = None
) -> dict[str, int]:
  """Writes the Hugging Face files of `tok` to `directory`; returns the ids `config.json` names
  (`bos_token_id`, `eos_token_id`, `pad_token_id`: those the tokenizer has). `wrap`: an
  encoder's (see `from_chars`); a decoder's names its end of text (the module's docstring), a
  character vocabulary's in a model of `vocab_size` ids (`char_end_of_text`)."""
  if isinstance(tok, CharTokenizer):
    tok = from_chars(tok, wrap, None if wrap else char_end_of_text(tok, vocab_size))
  if isinstance(tok, hf_tokenizer.HFTokenizer):
    eos = None if wrap or tok.eos_id is None else tok.tokenizer.id_to_token(tok.eos_id)
    tok = hf_tokenizer.HFTokenizer(tok.tokenizer, _with_ends(tok.config, eos))
    tok.save(directory)
    config, token_id = tok.config, tok.tokenizer.token_to_id
  elif isinstance(tok, SentencePieceTokenizer):
    config, token_id = _save_sentencepiece(tok, directory, wrap), tok.sp.piece_to_id
  else:
    raise ValueError(f"a {type(tok).__name__} has no Hugging Face tokenizer files")
  named = {k: v for k, v in config.items() if k.endswith("_token") and v}
  (paths.run_path(directory) / SPECIAL_MAP_FILE).write_text(json.dumps(named, indent=2))
  texts = {k: hf_tokenizer.token_content(named[k]) for k in _CONFIG_IDS if k in named}
  ids = {f"{k}_id": token_id(t) for k, t in texts.items()}
  return {k: i for k, i in ids.items() if i is not None}


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
