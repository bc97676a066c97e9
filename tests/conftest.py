"""Fixtures shared by the tests here (the root conftest.py has the rest)."""

import dataclasses

import pytest

import fake_data


@pytest.fixture(scope='module')
def fake_data_dir(tmp_path_factory) -> str:
  """A TFDS data dir holding the tiny fake car set, 3 views per car."""
  directory = str(tmp_path_factory.mktemp('tfds'))
  fake_data.make_dataset(directory, num_views=3)
  return directory


@pytest.fixture
def build_car_render(tmp_path):
  """Builds a Car-render set from the models a test put in its manual dir.

  Returns a function (config, name, num_models) -> {split: examples}: it
  builds `config` renamed `name`, at 2 views of 16 px, from the
  `num_models` models in tmp_path/downloads/manual, with tmp_path as the
  data dir, and checks that the splits hold `split_sizes(num_models)` cars.
  """
  # Here, not at the top: every test in this folder loads this file, and
  # the builder's imports take seconds.
  from data_prep.car_render import car_render_dataset_builder as builder_lib  # pylint: disable=g-import-not-at-top

  def build(config, name, num_models):
    builder = builder_lib.Builder(
        config=dataclasses.replace(config, name=name, num_views=2,
                                   crop_size=16), data_dir=tmp_path)
    builder.download_and_prepare()
    splits = {split: list(source)
              for split, source in builder.as_data_source().items()}
    assert [len(splits[split]) for split in builder_lib.SPLITS] == list(
        builder_lib.split_sizes(num_models))
    return splits

  return build
