"""The preparation on Apache Beam's workers (the `beam` extra; `make test-beam`): the same bytes
as in one process, whatever the number of workers."""

import numpy as np
import pytest

from lm.data import inputs, prepare, token_cache
from lm.data.local_text import DataError

pytest.importorskip("apache_beam")


def _corpus(root) -> str:
  folder = root / "corpus"
  folder.mkdir()
  for i in range(40):
    body = "".join(f"line {i}.{j}: {'abcdefgh'[(i + j) % 8] * (1 + j % 5)}\n" for j in range(12))
    (folder / f"f{i:02d}.txt").write_text(body)
  return str(folder)


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_two_beam_workers_write_the_bytes_one_process_writes(tiny_config, tmp_path, tokenizer):
  tiny_config.data.path = _corpus(tmp_path)
  tiny_config.data.tokenizer = tokenizer
  tiny_config.data.vocab_size = 300
  units = inputs.list_units(tiny_config.data, unit_bytes=1500)
  prepared = {}
  for workers in (1, 2):
    tiny_config.data.data_dir = str(tmp_path / f"data{workers}")
    directory = token_cache.prepared_directory(tiny_config.data, units, None)
    manifest = prepare.prepare(
      tiny_config.data, directory, units, workers=workers, shard_bytes=1500
    )
    assert len(manifest["splits"]["train"]["shards"]) >= 4
    prepared[workers] = directory, manifest
  (one, m1), (two, m2) = prepared[1], prepared[2]
  assert m1 == m2
  kinds = (".tokens", ".starts", ".json")
  names = sorted(p.name for p in one.iterdir() if p.suffix in kinds)
  assert names == sorted(p.name for p in two.iterdir() if p.suffix in kinds)
  for name in names:
    assert (one / name).read_bytes() == (two / name).read_bytes(), name
  data = token_cache.load(two, m2)
  assert len(np.asarray(data.splits["train"])) == m2["splits"]["train"]["tokens"]


def test_a_bad_record_read_by_a_beam_worker_is_the_one_line_it_is_in_one_process(
  tiny_config, tmp_path
):
  folder = tmp_path / "corpus"
  folder.mkdir()
  for i in range(4):
    (folder / f"f{i}.jsonl").write_text(f'{{"text": "hello {i}"}}\n{{"text": "world"}}\n')
  (folder / "f9.jsonl").write_text('{"text": "a"}\n{oops\n')
  tiny_config.data.path = str(folder)
  with pytest.raises(
    DataError, match=r"f9.jsonl' line 2 is not JSON \(.*\); fix or remove the line$"
  ):
    token_cache.tokenized_data(tiny_config.data, workers=2)
