"""Damages a saved checkpoint the way a bad disk or a cut copy would."""

import os


def flip_a_byte(step_directory: str | os.PathLike) -> None:
  """Flips the middle byte of a step's state manifest.

  The OCDBT manifest is CRC-32C checked, so TensorStore reports DATA_LOSS
  on restore (a flipped byte in array data would go unnoticed).
  """
  path = os.path.join(step_directory, 'state', 'manifest.ocdbt')
  with open(path, 'r+b') as file:
    data = bytearray(file.read())
    data[len(data) // 2] ^= 0xFF
    file.seek(0)
    file.write(data)
