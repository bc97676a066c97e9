"""The numbers RESULTS.md's prose quotes, each tied to the file it comes from.

A number in the prose is written as an inline value,

    <!-- value:demo:pck.kgnn2d.occluded.0.1 -->40.4<!-- /value -->

which renders as just "40.4". `launch.report` rewrites the text between the
markers from the source (`replace_values`), and a test checks that every
value equals what the copies under docs/results/ give, so the prose cannot
drift from the runs. A reference is `<source>:<quantity>`:

  - `<run>:<key>`: a metrics.json figure of a run of `runs.RUNS`, formatted
    by its family (`format_figure`); `<run>:<key>_ci` its interval as
    `[low, high]`;
  - `<run>:<key> minus <key>`: a signed difference ('+31.0': percentage
    points for fractions);
  - `bench:<size>/<pipeline>/<mode>/<batch>/<field>`: a bench.json
    measurement, `<field>` one of `BENCH_FIELDS`; `bench:ceiling` the
    matmul ceiling in GFLOP/s.
"""

from collections.abc import Callable, Mapping
import re
from typing import Any

from absl import logging

from occnet_jax.evaluation import metric_keys
from reproduction import cells

BENCH = 'bench'
MINUS = ' minus '
_VALUE = re.compile(r'<!-- value:(?P<reference>[^>]+?) -->(?P<text>.*?)'
                    r'<!-- /value -->', re.DOTALL)


def _percent(value: float) -> str:
  return cells.percent(value)


def _whole(value: float) -> str:
  return str(int(value))


def _tenths(value: float) -> str:
  return f'{value:.1f}'


def _thousandths(value: float) -> str:
  return f'{value:.3f}'


# How each metrics.json family is written (a yaw statistic by its name).
_FAMILY_FORMATS: dict[str, Callable[[float], str]] = {
    'pck': _percent, 'pck_labels': _percent, 'robustness': _percent,
    'pck_box_jitter': _percent, 'encoder_fit_sweep': _percent,
    'gate_sweep': _percent, 'gate_open': _percent, 'gate_open_pck': _percent,
    'multiview_fraction': _percent,
    'count': _whole, 'multiview_subsets': _whole, 'multiview': _tenths,
    'occlusion_auc': _thousandths}
_YAW_FORMATS = {metric_keys.MEDIAN_DEG: _tenths,
                metric_keys.WITHIN_30DEG: _percent}
# bench.json measurement fields: (how to read one from a record, format).
BENCH_FIELDS: dict[str, tuple[Callable[[Mapping[str, Any]], float],
                              Callable[[float], str]]] = {
    'cars_per_second': (lambda r: r['cars_per_second']['median'], _tenths),
    'fraction_of_ceiling': (lambda r: r['fraction_of_ceiling'], _percent),
    'fraction_of_ceiling_beside': (
        lambda r: r['fraction_of_ceiling_beside'], _percent),
    'fraction_of_ceiling_beside_low': (
        lambda r: r['fraction_of_ceiling_beside_range'][0], _percent),
    'fraction_of_ceiling_beside_high': (
        lambda r: r['fraction_of_ceiling_beside_range'][1], _percent),
    'seconds': (lambda r: r['seconds']['median'], _tenths),
    'gflop': (lambda r: r['flops_per_call'] / 1e9, _whole),
}


def figure_format(key: str) -> Callable[[float], str]:
  """How a metrics.json key's figure is written."""
  parsed = metric_keys.parse(key)
  if parsed.family == 'yaw_error':
    return _YAW_FORMATS[parsed.level]
  return _FAMILY_FORMATS[parsed.family]


def _signed(text: str) -> str:
  return text if text.startswith('-') else f'+{text}'


def metric_value(metrics: Mapping[str, Any], quantity: str) -> str:
  """The text of a run's quantity (module docstring).

  Raises:
    KeyError: the figure is not in metrics.json or is null.
  """
  keys = quantity.split(MINUS)
  values = []
  for key in keys:
    if metrics.get(key) is None:
      raise KeyError(f'{key} is not in metrics.json, or is null')
    values.append(metrics[key])
  show = figure_format(keys[0])
  if keys[0].endswith(metric_keys.CI_SUFFIX):
    low, high = values[0]
    return f'[{show(low)}, {show(high)}]'
  if len(values) == 2:
    return _signed(show(values[0] - values[1]))
  return show(values[0])


def bench_value(bench: Mapping[str, Any], quantity: str) -> str:
  """The text of a bench.json quantity (module docstring).

  Raises:
    KeyError: no such measurement or field.
  """
  if quantity == 'ceiling':
    return _tenths(bench['ceiling']['flops_per_second'] / 1e9)
  size, pipeline, mode, batch, field = quantity.split('/')
  for record in bench['measurements']:
    if (record['size'], record['pipeline'], record['mode'],
        str(record['batch_cars'])) == (size, pipeline, mode, batch):
      read, show = BENCH_FIELDS[field]
      return show(read(record))
  raise KeyError(f'no measurement {size}/{pipeline}/{mode}/{batch}')


def references(text: str) -> list[tuple[str, str]]:
  """(reference, current text) of every inline value, in document order."""
  return [(match['reference'], match['text'])
          for match in _VALUE.finditer(text)]


def replace_values(text: str, metrics: Mapping[str, Mapping[str, Any] | None],
                   bench: Mapping[str, Any] | None) -> str:
  """Rewrites every inline value from its source.

  Args:
    text: the document.
    metrics: metrics.json by run name (None for a run that is not there:
      its values keep their text, as a report on a machine without the runs
      keeps its tables).
    bench: bench.json, or None (the same).

  Returns:
    The document with each value's text rewritten.

  Raises:
    ValueError: naming the line of a reference to an unknown run, or to a
      figure its source lacks.
  """

  def substitute(match: re.Match[str]) -> str:
    reference = match['reference']
    line = text.count('\n', 0, match.start()) + 1
    source, _, quantity = reference.partition(':')
    if source != BENCH and source not in metrics:
      raise ValueError(f'line {line}: value:{reference} names no run.')
    data = bench if source == BENCH else metrics[source]
    if data is None:
      logging.warning('line %d: %s is not there; value:%s keeps %r.', line,
                      source, reference, match['text'])
      return match.group(0)
    try:
      value = (bench_value if source == BENCH else metric_value)(data,
                                                                 quantity)
    except (KeyError, ValueError) as error:
      raise ValueError(
          f'line {line}: value:{reference}: {error.args[0]}.') from None
    return f'<!-- value:{reference} -->{value}<!-- /value -->'

  return _VALUE.sub(substitute, text)
