import numpy as np
import pytest

from lm.data import inputs, local_text, prepare, token_cache
from lm.data.local_text import DataError


def test_folder_corpus_include_and_exclude(tmp_path):
  for rel in ("a.py", "b.txt", "pkg/c.py", "test/d.py", ".hidden.py"):
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text(rel)

  def names(files):
    return [f[len(str(tmp_path)) + 1 :] for f in files]

  assert names(local_text.corpus_files(str(tmp_path))) == ["a.py", "b.txt", "pkg/c.py", "test/d.py"]
  assert names(local_text.corpus_files(str(tmp_path), "*.py", ("test/*",))) == ["a.py", "pkg/c.py"]


def _corpus(tiny_config, tmp_path, data: bytes, name: str = "corpus.txt"):
  path = tmp_path / name
  path.write_bytes(data)
  tiny_config.data.path = str(path)
  return tiny_config.data


def test_latin1_corpus_fails_as_utf8_and_keeps_its_accents_as_latin1(tiny_config, tmp_path):
  text = "ab\n" + "caf\u00e9 \u00e0 la carte\n" * 50
  data_cfg = _corpus(tiny_config, tmp_path, text.encode("latin-1"))
  with pytest.raises(
    DataError,
    match=r"corpus.txt' line 2: byte 6 \(b'\\xe9'\) is not valid "
    r"utf-8; set config.data.encoding .* --config.data.encoding=latin-1",
  ):
    token_cache.tokenized_data(data_cfg)
  data_cfg.encoding = "latin-1"
  data = token_cache.tokenized_data(data_cfg)
  assert data.tokenizer.decode(data.tokenizer.encode("\u00e9\u00e0")) == "\u00e9\u00e0"
  tokens = np.concatenate([data.splits["train"], data.splits["validation"]])
  assert data.tokenizer.decode(tokens) == text
  # Asked for by name, the bytes that do not decode become U+FFFD (as every corpus did before).
  data_cfg.encoding, data_cfg.decode_errors = "utf-8", "replace"
  data = token_cache.tokenized_data(data_cfg)
  tokens = np.concatenate([data.splits["train"], data.splits["validation"]])
  assert data.tokenizer.decode(tokens) == text.replace("\u00e9", "\ufffd").replace(
    "\u00e0", "\ufffd"
  )


def test_encoding_names_the_prepared_dataset(tiny_config, tmp_path):
  (tmp_path / "c.txt").write_text("abc\n")
  tiny_config.data.path = str(tmp_path / "c.txt")
  units = inputs.list_units(tiny_config.data)

  def name(enc):
    tiny_config.data.encoding = enc
    return prepare.dataset_id(tiny_config.data, units)

  assert name("latin-1") == name("ISO-8859-1") != name("utf-8") == name("UTF8")
  with pytest.raises(DataError, match=r"config.data.encoding='klingon' is not a known"):
    name("klingon")


def test_corpus_with_crlf_line_breaks_reads_as_before(tmp_path):
  (tmp_path / "c.txt").write_bytes(b"a\r\nb\rc\n")
  assert local_text.read_text(str(tmp_path / "c.txt"), "utf-8") == "a\nb\nc\n"


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_binary_file_is_rejected_whatever_the_encoding(tiny_config, tmp_path, encoding):
  (tmp_path / "corpus").mkdir()
  (tmp_path / "corpus" / "a.txt").write_text("some text\n" * 20)
  (tmp_path / "corpus" / "b.bin").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00")
  tiny_config.data.path = str(tmp_path / "corpus")
  tiny_config.data.encoding = encoding
  with pytest.raises(
    DataError,
    match=r"corpus/b.bin' looks binary: it holds NUL bytes "
    r"\(the first at byte 7\)",
  ):
    token_cache.tokenized_data(tiny_config.data)


def test_corpus_without_text_fails_naming_the_path(tiny_config, tmp_path):
  data_cfg = _corpus(tiny_config, tmp_path, b"")
  with pytest.raises(DataError, match=r"config.data.path='.*corpus.txt' holds no text$"):
    token_cache.tokenized_data(data_cfg)
