"""A Hugging Face directory whose files are truncated or garbled, or whose weights need torch
where it is missing: ValueError naming the file, one `error:` line from the entry points
(without torch or transformers: the directory is our own export)."""

import struct
import subprocess
import sys

import pytest
from flax import nnx

from lm.convert import hf, hf_tokenizers
from lm.data import hf_tokenizer
from lm.data.tokenizer import CharTokenizer
from lm.model.config import TransformerConfig
from lm.model.transformer import make_model
from tests.conftest import REPO


@pytest.fixture
def hf_dir(tmp_path):
  """A tiny GPT-2 exported with its character tokenizer (tokenizer.json)."""
  tok = CharTokenizer("abcdefgh ")
  cfg = TransformerConfig(
    vocab_size=tok.vocab_size, num_layers=1, num_heads=2, d_model=8, mlp_dim=16, max_seq_len=16
  )
  params = nnx.to_pure_dict(nnx.state(make_model(cfg, rngs=nnx.Rngs(0)), nnx.Param))
  hf.export(cfg, params, str(tmp_path / "gpt2"), tok)
  return tmp_path / "gpt2"


def _run(module: str, *args: str, prelude: str = "") -> subprocess.CompletedProcess:
  """`python -m module args` (after `prelude`, run in the same process)."""
  code = f"{prelude}\nimport runpy\nrunpy.run_module({module!r}, run_name='__main__')"
  return subprocess.run(
    [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, check=False
  )


def _truncate(path, size: int) -> None:
  path.write_bytes(path.read_bytes()[:size])


def test_sample_on_truncated_weights_is_one_line(hf_dir):
  weights = hf_dir / "model.safetensors"
  header = struct.unpack("<Q", weights.read_bytes()[:8])[0]
  _truncate(weights, 8 + header + 100)  # the header whole, the tensors cut short
  run = _run("experiments.sample", f"--hf_dir={hf_dir}", "--prompt=abc")
  assert run.returncode == 1
  assert run.stderr.splitlines() == [
    f"error: {weights} is not a readable safetensors file (Error while deserializing header: "
    "incomplete metadata, file not fully covered): truncated or corrupted? download or export "
    "it again"
  ]


def test_fill_mask_on_a_truncated_tokenizer_json_is_one_line(hf_dir):
  _truncate(hf_dir / "tokenizer.json", 300)
  run = _run("experiments.fill_mask", f"--hf_dir={hf_dir}", "--text=a[MASK]c")
  assert run.returncode == 1
  (line,) = run.stderr.splitlines()
  assert line.startswith(
    f"error: {hf_dir / 'tokenizer.json'} is not a tokenizer the tokenizers library reads (EOF "
  )


def test_pytorch_bin_without_torch_says_what_to_install(hf_dir):
  (hf_dir / "model.safetensors").rename(hf_dir / "pytorch_model.bin")
  run = _run(
    "experiments.sample",
    f"--hf_dir={hf_dir}",
    "--prompt=abc",
    prelude="import sys; sys.modules['torch'] = None",  # as if torch were not installed
  )
  assert run.returncode == 1
  assert run.stderr.splitlines() == [
    f"error: {hf_dir / 'pytorch_model.bin'} is a pickle that only torch reads safely: install "
    "the `hf` extra (pip install 'lm[hf]'), or convert it to model.safetensors"
  ]


def test_garbage_weights_and_config_name_the_file(hf_dir):
  (hf_dir / "model.safetensors").write_bytes(b"\xff" * 3000)
  with pytest.raises(ValueError, match=r"model.safetensors is not a readable safetensors file"):
    hf.read_weights(str(hf_dir))
  _truncate(hf_dir / "config.json", 50)
  with pytest.raises(ValueError, match=r"config.json is not valid JSON \(Expecting"):
    hf.import_params(str(hf_dir))
  (hf_dir / "config.json").write_text('{"model_type": "gpt2"}')
  with pytest.raises(ValueError, match=r"config.json lacks the field 'vocab_size'"):
    hf.import_params(str(hf_dir))


def test_a_garbled_pytorch_bin_names_the_file(hf_dir):
  pytest.importorskip("torch")
  (hf_dir / "model.safetensors").unlink()
  (hf_dir / "pytorch_model.bin").write_bytes(b"garbage" * 10)
  with pytest.raises(ValueError, match=r"pytorch_model.bin cannot be read by torch \(") as e:
    hf.read_weights(str(hf_dir))
  assert "\n" not in str(e.value)


@pytest.mark.parametrize(
  "name, content, message",
  [
    ("tokenizer_config.json", b'{"eos', r"tokenizer_config.json is not valid JSON"),
    ("tokenizer.json", b"\xff\xfe", r"tokenizer.json is not a text file"),
    ("tokenizer.json", b"{}", r"tokenizer.json is not a tokenizer the tokenizers library reads"),
  ],
)
def test_garbled_tokenizer_files_name_the_file(hf_dir, name, content, message):
  (hf_dir / name).write_bytes(content)
  with pytest.raises(ValueError, match=message):
    hf_tokenizer.load(str(hf_dir))


def test_garbled_bpe_and_sentencepiece_files_name_the_file(tmp_path):
  (tmp_path / "vocab.json").write_text('{"a": 0, "b": 1}')
  (tmp_path / "merges.txt").write_text("#version: 0.2\na b\nab\n")
  with pytest.raises(ValueError, match=r"merges.txt line 3 is not a merge"):
    hf_tokenizer.load(str(tmp_path))
  (tmp_path / "vocab.json").write_text('{"a": 0,')
  with pytest.raises(ValueError, match=r"vocab.json is not valid JSON"):
    hf_tokenizer.load(str(tmp_path))
  spm_dir = tmp_path / "spm"
  spm_dir.mkdir()
  (spm_dir / hf_tokenizers.SPM_MODEL).write_bytes(b"garbage")
  with pytest.raises(ValueError, match=r"tokenizer.model is not a SentencePiece model"):
    hf_tokenizers.load(str(spm_dir))
