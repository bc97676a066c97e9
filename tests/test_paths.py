"""Local paths are made absolute where they lie; URIs pass as given."""

import os

from occnet_jax import paths


def test_relative_local_paths_become_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert not paths.is_remote('workdirs/demo')
  assert os.fspath(paths.absolute('workdirs/demo')) == os.path.join(
      os.fspath(tmp_path), 'workdirs', 'demo')


def test_uris_are_left_as_given():
  for uri in ('gs://bucket/runs/demo', 's3://bucket/x'):
    assert paths.is_remote(uri)
    assert os.fspath(paths.absolute(uri)) == uri
