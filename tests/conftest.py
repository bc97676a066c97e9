"""Fixtures shared by the training tests (the root conftest.py has the rest)."""

import pytest

import fake_data


@pytest.fixture(scope='module')
def fake_data_dir(tmp_path_factory) -> str:
  """A TFDS data dir holding the tiny fake car set, 3 views per car."""
  directory = str(tmp_path_factory.mktemp('tfds'))
  fake_data.make_dataset(directory, num_views=3)
  return directory
