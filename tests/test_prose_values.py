"""reproduction.prose_values, and RESULTS.md's prose against docs/results/.

The first tests write random figures and check their text; the last ones
read the repository's RESULTS.md and check every inline value against the
copies the report left in docs/results/, and that its prose quotes no
decimal number any other way.
"""

import json
import os
import re

import numpy as np
import pytest

from occnet_jax.evaluation import metric_keys
from reproduction import prose_values
from reproduction import runs

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPOSITORY, 'RESULTS.md')
FIGURES = os.path.join(REPOSITORY, 'docs', 'results')


def value(reference: str, text: str = '?') -> str:
  return f'<!-- value:{reference} -->{text}<!-- /value -->'


def test_figures_are_written_by_family(rng):
  pck = metric_keys.pck('kgnn2d', 'occluded', 0.1)
  base = metric_keys.pck('heatmap', 'occluded', 0.1)
  auc = metric_keys.occlusion_auc('kgnn2d')
  median = metric_keys.yaw_error('kgnn3d', metric_keys.MEDIAN_DEG)
  within = metric_keys.yaw_error('kgnn3d', metric_keys.WITHIN_30DEG)
  count = metric_keys.count('occluded')
  low, high = np.sort(rng.random(2))
  metrics = {pck: float(rng.random()), base: float(rng.random()),
             auc: float(rng.uniform(0.5, 1)), median: float(rng.uniform(0, 90)),
             within: float(rng.random()), count: int(rng.integers(1, 999)),
             metric_keys.interval(pck): [float(low), float(high)]}
  show = lambda quantity: prose_values.metric_value(metrics, quantity)
  assert show(pck) == f'{100 * metrics[pck]:.1f}'
  assert show(auc) == f'{metrics[auc]:.3f}'
  assert show(median) == f'{metrics[median]:.1f}'
  assert show(within) == f'{100 * metrics[within]:.1f}'
  assert show(count) == str(metrics[count])
  assert show(metric_keys.interval(pck)) == (
      f'[{100 * low:.1f}, {100 * high:.1f}]')
  difference = show(pck + prose_values.MINUS + base)
  assert float(difference) == pytest.approx(
      100 * (metrics[pck] - metrics[base]), abs=0.05 + 1e-9)
  assert difference[0] in '+-'
  with pytest.raises(KeyError, match='pck.shape_fit'):
    show(metric_keys.pck('shape_fit', 'occluded', 0.1))


def test_bench_values(rng):
  rate, fraction = float(rng.uniform(1, 500)), float(rng.random())
  bench = {'ceiling': {'flops_per_second': float(rng.uniform(1e10, 1e12))},
           'measurements': [{
               'size': 'paper', 'pipeline': 'graph', 'mode': 'train',
               'batch_cars': 64, 'cars_per_second': {'median': rate},
               'fraction_of_ceiling': fraction}]}
  assert prose_values.bench_value(
      bench, 'paper/graph/train/64/cars_per_second') == f'{rate:.1f}'
  assert prose_values.bench_value(
      bench, 'paper/graph/train/64/fraction_of_ceiling') == (
          f'{100 * fraction:.1f}')
  assert prose_values.bench_value(bench, 'ceiling') == (
      f'{bench["ceiling"]["flops_per_second"] / 1e9:.1f}')
  with pytest.raises(KeyError, match='paper/graph/train/8'):
    prose_values.bench_value(bench, 'paper/graph/train/8/cars_per_second')


def test_replace_values_rewrites_keeps_and_names_the_line(rng):
  key = metric_keys.pck('kgnn2d', 'visible', 0.1)
  figure = float(rng.random())
  text = (f'# T\n\nOurs {value("demo:" + key)} and '
          f'{value("no_trifocal:" + key, "kept")}.\n')
  new = prose_values.replace_values(text, {'demo': {key: figure},
                                           'no_trifocal': None}, None)
  assert new == text.replace('-->?<', f'-->{100 * figure:.1f}<')
  assert prose_values.replace_values(new, {'demo': {key: figure},
                                           'no_trifocal': None}, None) == new
  with pytest.raises(ValueError, match='line 5: value:nonesuch'):
    prose_values.replace_values(text + '\n' + value(f'nonesuch:{key}'),
                                {'demo': {key: figure}, 'no_trifocal': None},
                                None)
  with pytest.raises(ValueError, match='line 3: value:demo'):
    prose_values.replace_values(text, {'demo': {}, 'no_trifocal': None}, None)


def copied_sources() -> tuple[dict, dict | None]:
  """Every run's metrics.json (as the report reads it) and bench.json."""
  metrics = {}
  for run in runs.RUNS:
    path = os.path.join(FIGURES, run.name, 'metrics.json')
    metrics[run.name] = None
    if os.path.exists(path):
      with open(path) as file:
        metrics[run.name] = metric_keys.with_current_names(json.load(file))
  bench = None
  if os.path.exists(os.path.join(FIGURES, 'bench.json')):
    with open(os.path.join(FIGURES, 'bench.json')) as file:
      bench = json.load(file)
  return metrics, bench


def test_results_values_equal_the_copied_metrics():
  with open(RESULTS) as file:
    text = file.read()
  found = prose_values.references(text)
  assert found, 'RESULTS.md quotes no inline value'
  metrics, bench = copied_sources()
  for reference, _ in found:
    source = reference.split(':', 1)[0]
    # A value whose source is not committed could never be checked.
    assert (bench if source == prose_values.BENCH else
            metrics.get(source)) is not None, reference
  assert prose_values.replace_values(text, metrics, bench) == text


def prose_by_section(text: str) -> dict[str, str]:
  """Each `##` section's prose: no report blocks, values or code."""
  text = re.sub(r'<!-- report:(\S+) -->.*?<!-- /report:\1 -->', '', text,
                flags=re.DOTALL)
  text = re.sub(r'<!-- value:.*?<!-- /value -->', '', text, flags=re.DOTALL)
  text = re.sub(r'`[^`]*`', '', text)
  sections, name = {}, ''
  for line in text.splitlines():
    if line.startswith('## '):
      name = line[3:].strip()
    elif not line.startswith('    '):  # Indented code.
      sections[name] = sections.get(name, '') + line + '\n'
  return sections


def test_prose_quotes_numbers_only_as_values():
  with open(RESULTS) as file:
    sections = prose_by_section(file.read())
  for name, prose in sections.items():
    # A decimal, other than a PCK alpha or a noise level.
    numbers = re.findall(r'(?<![@\w.])\d+\.\d+', re.sub(
        r'(alpha|σ|PCK@) ?\d+\.\d+', '', prose))
    assert not numbers, f'section {name!r} quotes {numbers} outside values'


def test_the_prose_test_sees_a_stray_number(rng):
  number = f'{rng.uniform(1, 99):.1f}'
  sections = prose_by_section(
      f'## A\n\nPCK@0.1 is {value("demo:x", "1.5")}, `2.5`.\n\n'
      f'## B\n\nIt is {number} here.\n')
  assert not re.findall(r'\d+\.\d+', sections['A'].replace('PCK@0.1', ''))
  assert number in sections['B']
