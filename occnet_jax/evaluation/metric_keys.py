"""The metrics file's key schema: one place that writes and parses every key.

A key is `<family>.<field>...`, its fields in the order `FAMILIES` gives
(evaluate.py's docstring says what each figure is). Methods and subsets
hold no dots; the last field may (an alpha or sigma written as str(float)),
so a key splits into at most 1 + len(fields) parts. A figure's 95%
bootstrap interval is the key plus `CI_SUFFIX`, e.g. `pck.kgnn2d.all.0.1_ci`.

    key = metric_keys.pck('kgnn2d', 'occluded', 0.1)
    # key == 'pck.kgnn2d.occluded.0.1'
    metric_keys.parse(key)  # MetricKey('pck', 'kgnn2d', 'occluded', 0.1)
"""

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

CI_SUFFIX = '_ci'
# Yaw statistics (`yaw_error.<method>.<statistic>`).
MEDIAN_DEG = 'median_deg'
WITHIN_30DEG = 'within_30deg'

# family -> (its fields, the type of its last field or None).
FAMILIES = {
    'pck': (('method', 'subset', 'level'), float),
    'pck_labels': (('method', 'subset', 'level'), float),
    'count': (('subset',), None),
    'occlusion_auc': (('method',), None),
    'robustness': (('method', 'level'), float),
    'pck_box_jitter': (('method', 'level'), float),
    'encoder_fit_sweep': (('subset', 'level'), float),
    'gate_sweep': (('subset', 'level'), float),
    'gate_open': (('subset',), None),
    'gate_open_pck': (('method', 'subset'), None),
    'multiview': (('method', 'level'), int),
    'multiview_fraction': (('method', 'level'), int),
    'multiview_subsets': (('level',), int),
    'yaw_error': (('method', 'level'), str),
}
# Methods renamed since metrics files were written: old name -> current
# (`with_current_names`). `shape_fit` fitted the keypoints the heatmap's
# confidence trusts; it became one of two shape fits (issue 24).
RENAMED_METHODS = {'shape_fit': 'shape_fit_confidence'}
# Families whose figures get bootstrap intervals: fractions of keypoints,
# areas under ROC curves and yaw errors over car instances.
INTERVAL_FAMILIES = ('pck', 'pck_labels', 'robustness', 'pck_box_jitter',
                     'encoder_fit_sweep', 'gate_sweep', 'gate_open',
                     'gate_open_pck', 'occlusion_auc', 'yaw_error')


class MetricKey(NamedTuple):
  """A parsed key; fields the family does not have are None.

  `level` is the family's last field: the PCK alpha, the noise or jitter
  sigma (float), the number of views (int) or the yaw statistic (str).
  """

  family: str
  method: str | None = None
  subset: str | None = None
  level: float | int | str | None = None

  def __str__(self) -> str:
    fields, kind = FAMILIES[self.family]
    parts = [self.family]
    for name in fields:
      value = getattr(self, name)
      if value is None:
        raise ValueError(f'{self.family} key without its {name}.')
      parts.append(str(kind(value)) if name == 'level' else value)
    return '.'.join(parts)


def parse(key: str) -> MetricKey:
  """The `MetricKey` of a key (its `_ci` suffix, if any, ignored).

  Raises:
    ValueError: not a key of `FAMILIES`.
  """
  key = key.removesuffix(CI_SUFFIX)
  family = key.split('.', 1)[0]
  if family not in FAMILIES or '.' not in key:
    raise ValueError(f'Not a metrics key: {key!r}.')
  fields, kind = FAMILIES[family]
  values = key.split('.', len(fields))[1:]
  if len(values) != len(fields):
    raise ValueError(f'{key!r} lacks fields of {fields}.')
  parsed = dict(zip(fields, values))
  if 'level' in parsed:
    parsed['level'] = kind(parsed['level'])
  return MetricKey(family, **parsed)


def try_parse(key: str) -> MetricKey | None:
  """`parse`, or None for keys outside the schema (`num_cars`, `step`)."""
  try:
    return parse(key)
  except ValueError:
    return None


def pck(method: str, subset: str, alpha: float) -> str:
  """'pck.<method>.<subset>.<alpha>': PCK against the true keypoints."""
  return str(MetricKey('pck', method, subset, float(alpha)))


def label_pck(method: str, subset: str, alpha: float) -> str:
  """'pck_labels.<method>.<subset>.<alpha>': PCK against the labels."""
  return str(MetricKey('pck_labels', method, subset, float(alpha)))


def count(subset: str) -> str:
  """'count.<subset>': how many keypoints a PCK subset holds."""
  return str(MetricKey('count', subset=subset))


def occlusion_auc(method: str) -> str:
  """'occlusion_auc.<method>'."""
  return str(MetricKey('occlusion_auc', method))


def robustness(method: str, sigma: float) -> str:
  """'robustness.<method>.<sigma>': PCK@0.1 under input noise."""
  return str(MetricKey('robustness', method, level=float(sigma)))


def box_jitter(method: str, sigma: float) -> str:
  """'pck_box_jitter.<method>.<sigma>': PCK@0.1 from moved boxes."""
  return str(MetricKey('pck_box_jitter', method, level=float(sigma)))


def encoder_fit_sweep(subset: str, threshold: float) -> str:
  """'encoder_fit_sweep.<subset>.<threshold>': PCK@0.1 of the encoder fit."""
  return str(MetricKey('encoder_fit_sweep', subset=subset,
                       level=float(threshold)))


def gate_sweep(subset: str, threshold: float) -> str:
  """'gate_sweep.<subset>.<threshold>': PCK@0.1, the hard gate raised."""
  return str(MetricKey('gate_sweep', subset=subset, level=float(threshold)))


def gate_open(subset: str) -> str:
  """'gate_open.<subset>': the fraction whose hard gate the model opened."""
  return str(MetricKey('gate_open', subset=subset))


def gate_open_pck(method: str, subset: str) -> str:
  """'gate_open_pck.<method>.<subset>': PCK@0.1 where the gate opened."""
  return str(MetricKey('gate_open_pck', method, subset))


def multiview(method: str, num_views: int, *, fraction: bool = False) -> str:
  """'multiview.<method>.<n>' or 'multiview_fraction.<method>.<n>'."""
  family = 'multiview_fraction' if fraction else 'multiview'
  return str(MetricKey(family, method, level=int(num_views)))


def multiview_subsets(num_views: int) -> str:
  """'multiview_subsets.<n>': how many n-view subsets were scored."""
  return str(MetricKey('multiview_subsets', level=int(num_views)))


def yaw_error(method: str, statistic: str) -> str:
  """'yaw_error.<method>.<statistic>' (`MEDIAN_DEG`, `WITHIN_30DEG`)."""
  return str(MetricKey('yaw_error', method, level=statistic))


def interval(key: str) -> str:
  """'<key>_ci': the key of a figure's 95% bootstrap interval."""
  return key + CI_SUFFIX


def with_current_names(metrics: Mapping[str, Any]) -> dict[str, Any]:
  """A metrics file's figures with every method of `RENAMED_METHODS` renamed.

  A key already under its current name wins over an old one.
  """
  current = {}
  for key, value in metrics.items():
    parsed = try_parse(key)
    if parsed is None or parsed.method not in RENAMED_METHODS:
      current[key] = value
  for key, value in metrics.items():
    parsed = try_parse(key)
    if parsed is not None and parsed.method in RENAMED_METHODS:
      suffix = CI_SUFFIX if key.endswith(CI_SUFFIX) else ''
      renamed = parsed._replace(method=RENAMED_METHODS[parsed.method])
      current.setdefault(str(renamed) + suffix, value)
  return current


def levels(keys: Iterable[str], family: str,
           method: str | None = None) -> list:
  """The sorted distinct levels of a family's keys (of one method)."""
  found = set()
  for key in keys:
    if key.endswith(CI_SUFFIX):
      continue
    parsed = try_parse(key)
    if parsed and parsed.family == family and method in (None,
                                                         parsed.method):
      found.add(parsed.level)
  return sorted(found)
