"""Local and remote paths: the one rule that tells them apart.

Workdirs and data dirs are local paths (often relative, as typed on the
command line) or URIs such as gs://bucket/run that `etils.epath` opens
through a file-system library.
"""

import os

from etils import epath


def is_remote(path: epath.PathLike) -> bool:
  """Whether the path is a URI (gs://...) rather than a local path."""
  return '://' in os.fspath(path)


def absolute(path: epath.PathLike) -> epath.Path:
  """Local paths made absolute, URIs as given.

  Orbax writes through TensorStore, which needs absolute local paths, and
  os.path.abspath would turn a gs:// path into a local one.
  """
  path = epath.Path(path)
  return path if is_remote(path) else path.absolute()
