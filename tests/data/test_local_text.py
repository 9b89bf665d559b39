from lm.data import local_text


def test_folder_corpus_include_and_exclude(tmp_path):
  for rel in ("a.py", "b.txt", "pkg/c.py", "test/d.py", ".hidden.py"):
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text(rel)
  names = lambda files: [f[len(str(tmp_path)) + 1:] for f in files]  # noqa: E731
  assert names(local_text.corpus_files(str(tmp_path))) == [
      "a.py", "b.txt", "pkg/c.py", "test/d.py"]
  assert names(local_text.corpus_files(str(tmp_path), "*.py", ("test/*",))) == ["a.py", "pkg/c.py"]
