"""A TFDS builder for a local text corpus: one file or a folder of files.

The files (sorted, `*.txt`-style text read as UTF-8) are concatenated; the last
`validation_fraction` of the characters, cut at a line break, is the validation split.
Each split is stored as records of at most `record_chars` characters, cut at line breaks,
in array_record format so it is read without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os

import tensorflow_datasets as tfds


@dataclasses.dataclass
class LocalTextConfig(tfds.core.BuilderConfig):
  path: str = ""
  include: str = "*"
  exclude: tuple[str, ...] = ()
  validation_fraction: float = 0.1
  record_chars: int = 1 << 16


def corpus_files(path: str, include: str = "*", exclude: tuple[str, ...] = ()) -> list[str]:
  """The files of a corpus: `path` itself, or the files below the folder `path`, sorted.

  In a folder, a file is taken if its path relative to the folder matches the glob `include`
  and none of the globs `exclude` (`*` also matches `/`); hidden files never are.
  """
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise FileNotFoundError(f"config.data.path={path!r} is neither a file nor a folder")

  def taken(rel: str) -> bool:
    return fnmatch.fnmatch(rel, include) and not any(fnmatch.fnmatch(rel, e) for e in exclude)

  files = sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names
                 if not name.startswith(".") and
                 taken(os.path.relpath(os.path.join(root, name), path)))
  if not files:
    raise FileNotFoundError(f"config.data.path={path!r} holds no files")
  return files


def _cut_at_newline(text: str, index: int) -> int:
  nl = text.rfind("\n", 0, index)
  return nl + 1 if nl > 0 else index


def split_text(text: str, validation_fraction: float) -> tuple[str, str]:
  """(train, validation): validation is the last fraction of the text, from a line start."""
  cut = _cut_at_newline(text, int(len(text) * (1.0 - validation_fraction)))
  return text[:cut], text[cut:]


def chunk_text(text: str, max_chars: int) -> list[str]:
  """Cuts text into pieces of at most `max_chars`, at line breaks where there is one."""
  chunks, start = [], 0
  while start < len(text):
    end = len(text) if len(text) - start <= max_chars else _cut_at_newline(text, start + max_chars)
    if end <= start:
      end = start + max_chars
    chunks.append(text[start:end])
    start = end
  return chunks


class LocalText(tfds.core.GeneratorBasedBuilder):
  """Plain text from local files, split into train and validation."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        disable_shuffling=True)  # keep the corpus order: records are pieces of one stream

  def _split_generators(self, dl_manager):
    del dl_manager
    text = "".join(open(f, encoding="utf-8", errors="replace").read()
                   for f in corpus_files(self.builder_config.path, self.builder_config.include,
                                        self.builder_config.exclude))
    train, validation = split_text(text, self.builder_config.validation_fraction)
    return {"train": self._generate_examples(train),
            "validation": self._generate_examples(validation)}

  def _generate_examples(self, text: str):
    for i, chunk in enumerate(chunk_text(text, self.builder_config.record_chars)):
      yield i, {"text": chunk}


def local_text_builder(path: str, validation_fraction: float, data_dir: str,
                       include: str = "*", exclude: tuple[str, ...] = ()) -> LocalText:
  """A LocalText builder whose config name is tied to the corpus path and contents."""
  path = os.path.abspath(os.path.expanduser(path))
  exclude = tuple(exclude)
  digest = hashlib.sha256(f"{validation_fraction}".encode())
  for f in corpus_files(path, include, exclude):
    st = os.stat(f)
    digest.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
  stem = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
  name = "".join(c if c.isalnum() else "_" for c in stem).lower() + "_" + digest.hexdigest()[:10]
  config = LocalTextConfig(name=name, path=path, include=include, exclude=exclude,
                           validation_fraction=validation_fraction)
  return LocalText(config=config, data_dir=data_dir, file_format="array_record")
