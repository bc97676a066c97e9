"""Tests of the metrics key schema: every key parses back to its fields."""

import pytest

from occnet_jax.evaluation import metric_keys


def test_every_family_round_trips(rng):
  alpha = float(rng.choice([0.05, 0.1, 0.15, 0.25]))
  sigma = float(rng.uniform(0, 1))
  views = int(rng.integers(2, 9))
  written = {
      metric_keys.pck('kgnn2d', 'occluded_self', alpha):
          ('pck', 'kgnn2d', 'occluded_self', alpha),
      metric_keys.label_pck('shape_fit_encoder', 'occluded_5', alpha):
          ('pck_labels', 'shape_fit_encoder', 'occluded_5', alpha),
      metric_keys.count('visible'): ('count', None, 'visible', None),
      metric_keys.occlusion_auc('heatmap'):
          ('occlusion_auc', 'heatmap', None, None),
      metric_keys.robustness('kgnn3d', sigma):
          ('robustness', 'kgnn3d', None, sigma),
      metric_keys.box_jitter('heatmap', sigma):
          ('pck_box_jitter', 'heatmap', None, sigma),
      metric_keys.encoder_fit_sweep('occluded', sigma):
          ('encoder_fit_sweep', None, 'occluded', sigma),
      metric_keys.gate_sweep('visible', sigma):
          ('gate_sweep', None, 'visible', sigma),
      metric_keys.gate_open('occluded'): ('gate_open', None, 'occluded', None),
      metric_keys.gate_open_pck('heatmap', 'visible'):
          ('gate_open_pck', 'heatmap', 'visible', None),
      metric_keys.multiview('labels', views):
          ('multiview', 'labels', None, views),
      metric_keys.multiview('kgnn2d', views, fraction=True):
          ('multiview_fraction', 'kgnn2d', None, views),
      metric_keys.multiview_subsets(views):
          ('multiview_subsets', None, None, views),
      metric_keys.yaw_error('kgnn3d', metric_keys.MEDIAN_DEG):
          ('yaw_error', 'kgnn3d', None, 'median_deg'),
  }
  assert {key.split('.')[0] for key in written} == set(metric_keys.FAMILIES)
  for key, fields in written.items():
    assert tuple(metric_keys.parse(key)) == fields
    assert str(metric_keys.parse(key)) == key
    assert metric_keys.parse(metric_keys.interval(key)) == (
        metric_keys.parse(key))
  assert metric_keys.pck('heatmap', 'all', alpha) == f'pck.heatmap.all.{alpha}'


def test_levels_are_the_sorted_levels_of_one_method(rng):
  sigmas = [float(s) for s in rng.uniform(0, 1, 4)]
  results = {metric_keys.box_jitter('heatmap', s): 0.5 for s in sigmas}
  results.update({metric_keys.interval(metric_keys.box_jitter('heatmap', 9.0)):
                  [0.0, 1.0], metric_keys.box_jitter('kgnn2d', 7.0): 0.1,
                  'num_cars': 3, metric_keys.robustness('heatmap', 5.0): 0.2})
  assert metric_keys.levels(results, 'pck_box_jitter', 'heatmap') == sorted(
      sigmas)
  assert metric_keys.levels(results, 'pck_box_jitter') == sorted(
      sigmas + [7.0])


@pytest.mark.parametrize('key', ['num_cars', 'step', 'pck.kgnn2d.all',
                                 'unknown.kgnn2d.all.0.1', 'pck'])
def test_keys_outside_the_schema_do_not_parse(key):
  assert metric_keys.try_parse(key) is None
  with pytest.raises(ValueError):
    metric_keys.parse(key)


def test_old_method_names_read_under_their_current_ones(rng):
  alpha = float(rng.choice([0.05, 0.1, 0.2]))
  value, interval = float(rng.random()), sorted(rng.random(2).tolist())
  for old, new in metric_keys.RENAMED_METHODS.items():
    key = metric_keys.pck(old, 'occluded', alpha)
    other = metric_keys.pck('kgnn2d', 'occluded', alpha)
    metrics = {key: value, metric_keys.interval(key): interval, other: 0.5,
               'num_cars': 3}
    current = metric_keys.with_current_names(metrics)
    renamed = metric_keys.pck(new, 'occluded', alpha)
    assert current == {renamed: value, metric_keys.interval(renamed): interval,
                       other: 0.5, 'num_cars': 3}
    # A figure already under its current name wins.
    assert metric_keys.with_current_names(
        dict(metrics, **{renamed: 0.25}))[renamed] == 0.25
