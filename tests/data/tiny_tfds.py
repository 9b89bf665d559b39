"""A TFDS dataset made in the test's folder, registered once (by this module's one import name)
for every test module that uses it."""

import tensorflow_datasets as tfds
from etils import epath


class TinyCorpus(tfds.core.GeneratorBasedBuilder):
  """A TFDS dataset of 10 train and 3 validation records, prepared in the test's folder."""

  VERSION = tfds.core.Version("1.0.0")
  pkg_dir_path = epath.Path(__file__).parent  # TFDS looks for metadata beside a builder

  def _info(self):
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict({"sentence": tfds.features.Text()}),
      disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(10), "validation": self._generate_examples(3)}

  def _generate_examples(self, n):
    for i in range(n):
      yield i, {"sentence": f"record {i}\n" * (i + 1)}
