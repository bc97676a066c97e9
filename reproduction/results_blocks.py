"""RESULTS.md's generated blocks: the text between `<!-- report:NAME -->`
and `<!-- /report:NAME -->`, read and rewritten without touching the rest."""

from collections.abc import Mapping
import re

_OPEN = re.compile(r'<!-- report:(\S+) -->')
_CLOSE = re.compile(r'<!-- /report:(\S+) -->')


def replace_blocks(text: str, blocks: Mapping[str, str],
                   ) -> tuple[str, list[str]]:
  """Writes each block between its markers; nothing else changes.

  A block is `<!-- report:NAME -->`, a newline, its content, a newline and
  `<!-- /report:NAME -->`; replacing is idempotent.

  Args:
    text: the document (RESULTS.md).
    blocks: content by block name.

  Returns:
    (the new text, the names of the blocks whose content changed).

  Raises:
    ValueError: naming a marker without a block, a block without markers,
      or a marker opened twice or not closed.
  """
  opened = _OPEN.findall(text)
  closed = _CLOSE.findall(text)
  for name in opened:
    if opened.count(name) > 1:
      raise ValueError(f'Marker report:{name} appears more than once.')
  if sorted(opened) != sorted(closed):
    raise ValueError('Unpaired markers: '
                     f'{sorted(set(opened) ^ set(closed))}.')
  unknown = [name for name in opened if name not in blocks]
  if unknown:
    raise ValueError(f'Unknown report markers (no such block): {unknown}.')
  missing = [name for name in blocks if name not in opened]
  if missing:
    raise ValueError(f'No markers for report blocks: {missing}; add '
                     '<!-- report:NAME --> and <!-- /report:NAME -->.')
  updated = []

  def substitute(match: re.Match[str]) -> str:
    name, old = match.group(1), match.group(2)
    content = blocks[name].strip()
    new = f'\n{content}\n' if content else '\n'
    if old != new:
      updated.append(name)
    return f'<!-- report:{name} -->{new}<!-- /report:{name} -->'

  text, count = re.subn(r'<!-- report:(\S+) -->(.*?)<!-- /report:\1 -->',
                        substitute, text, flags=re.DOTALL)
  if count != len(opened):
    raise ValueError('Markers are nested or out of order.')
  return text, updated


def current_blocks(text: str) -> dict[str, str]:
  """The content of every block of a document, by name."""
  return {match.group(1): match.group(2) for match in re.finditer(
      r'<!-- report:(\S+) -->(.*?)<!-- /report:\1 -->', text, re.DOTALL)}
