"""How the reproduction writes numbers into tables: one format for each.

Percentages have one decimal; a value that is missing is '-'.
"""

from collections.abc import Sequence

EMPTY = '-'


def percent(value: float | None) -> str:
  """A fraction as a percentage with one decimal; '-' for None."""
  return EMPTY if value is None else f'{100 * value:.1f}'


def percent_interval(value: float | None,
                     interval: Sequence[float] | None) -> str:
  """A percentage with its [low, high] interval, e.g. '21.3 [19.5, 23.1]'."""
  if value is None or interval is None:
    return percent(value)
  low, high = interval
  return f'{percent(value)} [{percent(low)}, {percent(high)}]'


def mib(value: float) -> str:
  """Bytes in whole MiB."""
  return f'{value / 2**20:.0f}'


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  """A markdown table."""
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
  return '\n'.join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  """A plain-text table, each column as wide as its widest cell."""
  widths = [max(map(len, column)) for column in zip(header, *rows)]
  return '\n'.join('  '.join(cell.ljust(width) for cell, width
                             in zip(row, widths)).rstrip()
                   for row in [header, *rows])
