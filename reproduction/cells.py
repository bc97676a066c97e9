"""How the reproduction writes numbers into tables: one format for each.

Percentages have one decimal; a value that is missing is '-'.
"""

from collections.abc import Sequence

EMPTY = '-'
NOT_RUN = 'not run'
NOT_MEASURED = 'not measured'
METHOD_NAMES = {'heatmap': 'heatmap', 'kgnn2d': '2D-KGNN',
                'kgnn3d': '3D-KGNN',
                'shape_fit_confidence': 'shape fit (confidence)',
                'shape_fit_encoder': 'shape fit (encoder)',
                'oracle_fit': 'oracle fit (upper reference)',
                'labels': 'labels (upper bound)'}


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


def gain(value: float | None, base: float | None) -> str:
  """value - base in signed percentage points; '-' if either is None."""
  if value is None or base is None:
    return EMPTY
  return f'{100 * (value - base):+.1f}'


def auc(value: float | None) -> str:
  """An AUC with three decimals; '-' for None."""
  return EMPTY if value is None else f'{value:.3f}'


def duration(seconds: float) -> str:
  """'45 s', '8 min 20 s' or '1 h 05 min'."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f'{seconds} s'
  if seconds < 3600:
    return f'{seconds // 60} min {seconds % 60:02d} s'
  return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'


def auc_interval(value: float | None,
                 interval: Sequence[float] | None) -> str:
  """An AUC with its [low, high] interval where there is one."""
  if value is None or interval is None:
    return auc(value)
  return f'{auc(value)} [{auc(interval[0])}, {auc(interval[1])}]'
