"""The targets and the paper's claims, checked against a run's metrics.

Each target (`RUN_TARGETS`, issue 6) returns (measured, status) and each
claim check (`CLAIM_CHECKS`) (measured, above); the paper's numbers and the
thresholds are in `claims`.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from occnet_jax.categories import car as car_lib
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import multiview
from reproduction import cells
from reproduction import claims

MET, MISSED = 'met', 'missed'
ALPHA = 0.1


# Metrics.


def pck(metrics: Mapping[str, Any], method: str, subset: str,
        alpha: float = ALPHA) -> float | None:
  """A PCK value of metrics.json, None where absent or empty."""
  return metrics.get(metric_keys.pck(method, subset, alpha))


def pck_with_interval(metrics: Mapping[str, Any], method: str, subset: str,
                      alpha: float = ALPHA) -> str:
  """A PCK cell with its bootstrap interval where metrics.json has one."""
  key = metric_keys.pck(method, subset, alpha)
  return cells.percent_interval(metrics.get(key),
                                metrics.get(key + metric_keys.CI_SUFFIX))


def level_gains(metrics: Mapping[str, Any],
                alpha: float = ALPHA) -> dict[int, float]:
  """2D-KGNN minus heatmap occluded PCK by populated occlusion level."""
  gains = {}
  for level in car_lib.CAR.occlusion_levels:
    subset = f'occluded_{level}'
    ours, base = (pck(metrics, method, subset, alpha)
                  for method in ('kgnn2d', 'heatmap'))
    if ours is not None and base is not None:
      gains[level] = ours - base
  return gains


def populated_levels(metrics: Sequence[Mapping[str, Any]]) -> list[int]:
  """Occlusion levels with a 2D-KGNN PCK in any of the metrics."""
  return [level for level in car_lib.CAR.occlusion_levels
          if any(pck(m, 'kgnn2d', f'occluded_{level}') is not None
                 for m in metrics)]


def noise_sigmas(metrics: Mapping[str, Any]) -> list[float]:
  """The robustness noise levels of metrics.json, ascending."""
  return metric_keys.levels(metrics, 'robustness', 'kgnn2d')


# Targets (issue 6): each returns (measured, status).


def _status(met: bool) -> str:
  return MET if met else MISSED


def auc_target(metrics: Mapping[str, Any] | None) -> tuple[str, str]:
  """2D-KGNN occlusion AUC >= 0.95 and >= the heatmap's + 0.05."""
  if metrics is None:
    return cells.EMPTY, cells.NOT_RUN
  ours = metrics.get(metric_keys.occlusion_auc('kgnn2d'))
  base = metrics.get(metric_keys.occlusion_auc('heatmap'))
  if ours is None or base is None:
    return cells.EMPTY, cells.NOT_MEASURED
  return (f'{cells.auc(ours)} (heatmap {cells.auc(base)})',
          _status(ours >= claims.TARGET_AUC
                  and ours >= base + claims.TARGET_AUC_MARGIN))


def level_target(metrics: Mapping[str, Any] | None) -> tuple[str, str]:
  """2D-KGNN occluded PCK@0.1 >= heatmap + 10 at every populated level."""
  if metrics is None:
    return cells.EMPTY, cells.NOT_RUN
  gains = level_gains(metrics)
  if not gains:
    return cells.EMPTY, cells.NOT_MEASURED
  measured = ', '.join(f'{100 * value:+.1f} ({level})'
                       for level, value in gains.items())
  return measured, _status(all(value >= claims.TARGET_LEVEL_GAIN
                               for value in gains.values()))


def visible_target(metrics: Mapping[str, Any] | None) -> tuple[str, str]:
  """2D-KGNN visible PCK@0.1 >= heatmap visible - 1 point."""
  if metrics is None:
    return cells.EMPTY, cells.NOT_RUN
  ours, base = (pck(metrics, method, 'visible')
                for method in ('kgnn2d', 'heatmap'))
  if ours is None or base is None:
    return cells.EMPTY, cells.NOT_MEASURED
  return (f'{cells.percent(ours)} vs {cells.percent(base)} '
          f'({cells.gain(ours, base)})',
          _status(ours >= base - claims.TARGET_VISIBLE_LOSS))


def robustness_target(metrics: Mapping[str, Any] | None) -> tuple[str, str]:
  """Noise costs the 3D-KGNN less PCK@0.1 than the 2D-KGNN (least to most)."""
  if metrics is None:
    return cells.EMPTY, cells.NOT_RUN
  sigmas = noise_sigmas(metrics)
  if len(sigmas) < 2:
    return cells.EMPTY, cells.NOT_MEASURED
  values = {method: [metrics.get(metric_keys.robustness(method, sigma))
                     for sigma in (sigmas[0], sigmas[-1])]
            for method in ('kgnn2d', 'kgnn3d')}
  if any(None in pair for pair in values.values()):
    return cells.EMPTY, cells.NOT_MEASURED
  change = {method: last - first for method, (first, last) in values.items()}
  measured = (f'3D-KGNN {100 * change["kgnn3d"]:+.1f}, 2D-KGNN '
              f'{100 * change["kgnn2d"]:+.1f} (σ {sigmas[0]:g} to '
              f'{sigmas[-1]:g})')
  return measured, _status(change['kgnn3d'] > change['kgnn2d'])


def interval_above(metrics: Mapping[str, Any], key: str, base_key: str,
                   show: Callable[[float, Sequence[float] | None], str],
                   ) -> tuple[str, bool | None]:
  """Whether a figure's 95% interval lies wholly above another's.

  Args:
    metrics: metrics.json.
    key: the figure that should be higher.
    base_key: the figure it is compared with.
    show: formats a value and its interval for the table.

  Returns:
    (both figures with their intervals, True / False, or None where a
    figure or an interval is missing).
  """
  value, base = metrics.get(key), metrics.get(base_key)
  if value is None or base is None:
    return cells.EMPTY, None
  interval = metrics.get(metric_keys.interval(key))
  base_interval = metrics.get(metric_keys.interval(base_key))
  measured = f'{show(value, interval)} against {show(base, base_interval)}'
  if interval is None or base_interval is None:
    return measured + ' (no intervals)', None
  return measured, bool(interval[0] > base_interval[1])


def _above_target(metrics: Mapping[str, Any] | None, key: str,
                  base_key: str) -> tuple[str, str]:
  """`interval_above` of two PCKs as a target: (measured, met / missed)."""
  if metrics is None:
    return cells.EMPTY, cells.NOT_RUN
  measured, above = interval_above(metrics, key, base_key,
                                   cells.percent_interval)
  return measured, cells.NOT_MEASURED if above is None else _status(above)


def stronger_shape_fit(metrics: Mapping[str, Any], subset: str,
                       alpha: float = ALPHA) -> str | None:
  """The classical answer to beat: the shape fit with the higher PCK.

  Of `evaluate.SHAPE_FIT_METHODS` (fitted to the keypoints the heatmap's
  confidence or the 2D-KGNN's encoder calls visible), the one whose PCK on
  `subset` at `alpha` is the higher in this run; None if neither has one.
  """
  measured = {method: pck(metrics, method, subset, alpha)
              for method in evaluate.SHAPE_FIT_METHODS}
  measured = {method: value for method, value in measured.items()
              if value is not None}
  return max(measured, key=measured.get) if measured else None


def shape_fit_target(metrics: Mapping[str, Any] | None) -> tuple[str, str]:
  """2D-KGNN occluded PCK@0.1 interval above the stronger shape fit's."""
  if metrics is None:
    return cells.EMPTY, cells.NOT_RUN
  base = stronger_shape_fit(metrics, 'occluded')
  if base is None:
    return cells.EMPTY, cells.NOT_MEASURED
  measured, status = _above_target(
      metrics, metric_keys.pck('kgnn2d', 'occluded', ALPHA),
      metric_keys.pck(base, 'occluded', ALPHA))
  return f'{measured} ({cells.METHOD_NAMES[base]})', status


RUN_TARGETS: tuple[tuple[str, Callable[..., tuple[str, str]]], ...] = (
    (f'occlusion AUC of the 2D-KGNN >= {claims.TARGET_AUC:g} and >= '
     f'heatmap + {claims.TARGET_AUC_MARGIN:g}', auc_target),
    ('2D-KGNN occluded PCK@0.1 >= heatmap + '
     f'{100 * claims.TARGET_LEVEL_GAIN:g} at every populated level',
     level_target),
    ('2D-KGNN visible PCK@0.1 >= heatmap - '
     f'{100 * claims.TARGET_VISIBLE_LOSS:g}', visible_target),
    ('noise costs the 3D-KGNN less PCK@0.1 than the 2D-KGNN',
     robustness_target),
    ('2D-KGNN occluded PCK@0.1 above the stronger shape fit\'s (of the '
     'confidence- and the encoder-selected fits; 95% intervals apart)',
     shape_fit_target),
)


# The paper's claims (`claims.CLAIMS`): each check returns (measured,
# True / False / None) for a run's metrics.


def occlusion_auc_claim(metrics: Mapping[str, Any]) -> tuple[str, bool | None]:
  return interval_above(metrics, metric_keys.occlusion_auc('kgnn2d'),
                        metric_keys.occlusion_auc('heatmap'),
                        cells.auc_interval)


def occluded_pck_claim(metrics: Mapping[str, Any]) -> tuple[str, bool | None]:
  return interval_above(metrics, metric_keys.pck('kgnn2d', 'occluded', ALPHA),
                        metric_keys.pck('heatmap', 'occluded', ALPHA),
                        cells.percent_interval)


def robustness_claim(metrics: Mapping[str, Any]) -> tuple[str, bool | None]:
  sigmas = noise_sigmas(metrics)
  if not sigmas:
    return cells.EMPTY, None
  measured, above = interval_above(
      metrics, metric_keys.robustness('kgnn3d', sigmas[-1]),
      metric_keys.robustness('kgnn2d', sigmas[-1]), cells.percent_interval)
  return f'σ {sigmas[-1]:g}: {measured}', above


def box_jitter_claim(metrics: Mapping[str, Any]) -> tuple[str, bool | None]:
  sigma = claims.BOX_JITTER_SIGMA
  measured, above = interval_above(
      metrics, metric_keys.box_jitter('kgnn2d', sigma),
      metric_keys.box_jitter('heatmap', sigma), cells.percent_interval)
  return f'σ {sigma:g}: {measured}', above


def multiview_claim(metrics: Mapping[str, Any]) -> tuple[str, bool | None]:
  counts = [n for n in multiview.VIEW_COUNTS
            if metrics.get(metric_keys.multiview_subsets(n))]
  means = {n: {method: metrics.get(metric_keys.multiview(method, n))
               for method in ('kgnn3d', 'kgnn2d', 'heatmap')} for n in counts}
  if not counts or any(None in row.values() for row in means.values()):
    return cells.EMPTY, None
  measured = '; '.join(
      f'{n} views: ' + ', '.join(f'{cells.METHOD_NAMES[method]} {value:.1f}'
                                 for method, value in row.items())
      for n, row in means.items())
  return measured, all(row['kgnn3d'] > max(row['kgnn2d'], row['heatmap'])
                       for row in means.values())


CLAIM_CHECKS: dict[str, Callable[[Mapping[str, Any]],
                                 tuple[str, bool | None]]] = {
    'occlusion_auc': occlusion_auc_claim, 'occluded_pck': occluded_pck_claim,
    'robustness': robustness_claim, 'box_jitter': box_jitter_claim,
    'multiview': multiview_claim}


def claim_verdict(above: bool | None) -> str:
  """The verdict of a check's outcome."""
  if above is None:
    return cells.NOT_MEASURED
  return claims.REPRODUCED if above else claims.NOT_REPRODUCED
