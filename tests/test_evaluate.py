"""Tests of metrics.json's occlusion-kind subsets, yaw errors and intervals."""

import numpy as np
import pytest

from occnet_jax import geometry
from occnet_jax import labels
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
import synthetic_cars

NUM_CARS = 6
NUM_VIEWS = 3
SWEEP_THRESHOLD = 0.3
KINDS = tuple(evaluate.OCCLUSION_KIND_SUBSETS.items())


@pytest.fixture(scope='module')
def case(module_seed):
  """Views whose predictions are exact on self-occlusion only, and yaws."""
  rng = np.random.default_rng(module_seed)
  batch = synthetic_cars.make_batch(rng, NUM_CARS, NUM_VIEWS, 0.5)
  views = {name: batch[name].reshape((-1,) + batch[name].shape[2:])
           for name in ('keypoints', 'cameras', 'boxes', 'visibility')}
  num = len(views['boxes'])
  occluded = views['visibility'] == labels.Visibility.OCCLUDED
  kinds = np.array([kind for _, kind in KINDS])[
      rng.integers(0, len(KINDS), occluded.shape)]
  views['occlusion_kind'] = np.where(occluded, kinds, 0)
  views['true_keypoints'] = views['keypoints']
  views['car_id'] = np.repeat(np.arange(NUM_CARS), NUM_VIEWS)
  # Every method is exact except on occluded keypoints not self-occluded,
  # which it misses by a box.
  scale = np.max(views['boxes'][:, 2:] - views['boxes'][:, :2], axis=1)
  wrong = occluded & (views['occlusion_kind'] != labels.OcclusionKind.SELF)
  predicted = views['keypoints'] + np.where(wrong[..., None],
                                            scale[:, None, None], 0.0)
  for method in evaluate.METHODS:
    views[method] = predicted
    views[f'noisy.{method}'] = predicted[None]
  views[evaluate.ENCODER_SWEEP] = predicted[None]
  for method in evaluate.OCCLUSION_METHODS:
    views[f'occlusion.{method}'] = rng.normal(size=occluded.shape) + occluded
  # Yaw errors of known size; the last view's camera is PnP-estimated.
  views['camera_error'] = np.zeros(num, np.float32)
  views['camera_error'][-1] = 1.5
  centers = geometry.camera_center(views['cameras'].astype(np.float64))
  true_yaw = np.asarray(geometry.viewing_yaw(centers))
  offsets = {method: rng.uniform(-180, 180, num)
             for method in evaluate.YAW_METHODS}
  for method, offset in offsets.items():
    views[f'yaw.{method}'] = true_yaw + np.radians(offset)
  results = evaluate.compute_metrics(views, [0.1, 0.2], [0.0],
                                     encoder_fit_sweep=[SWEEP_THRESHOLD],
                                     decoder_gate_sweep=[SWEEP_THRESHOLD],
                                     decoder_gate_threshold=SWEEP_THRESHOLD)
  return dict(views=views, results=results, offsets=offsets)


def test_occlusion_kind_subsets_split_the_occluded_keypoints(case):
  results = case['results']
  assert sum(results[metric_keys.count(subset)] for subset, _ in KINDS) == (
      results[metric_keys.count('occluded')])
  for method in evaluate.METHODS:
    for subset, kind in KINDS:
      value = results[metric_keys.pck(method, subset, 0.1)]
      assert value == (1.0 if kind == labels.OcclusionKind.SELF else 0.0)


def test_encoder_fit_sweep_is_scored_as_its_predictions(case):
  results = case['results']
  for subset in evaluate.SWEEP_SUBSETS:
    key = metric_keys.encoder_fit_sweep(subset, SWEEP_THRESHOLD)
    assert results[key] == results[metric_keys.pck('shape_fit_encoder',
                                                   subset, 0.1)]


def test_a_raised_gate_moves_only_the_keypoints_scored_above_it(case, rng):
  # The 2D-KGNN exact everywhere, its input (the heatmap's) a box off: a
  # keypoint scores a hit exactly where the raised gate leaves it open.
  views = dict(case['views'])
  truth, visibility = views['true_keypoints'], views['visibility']
  scale = np.max(views['boxes'][:, 2:] - views['boxes'][:, :2], axis=1)
  views['kgnn2d'] = truth
  views['heatmap'] = truth + scale[:, None, None]
  scores = views['occlusion.kgnn2d']
  threshold = float(np.quantile(scores, rng.uniform(0.2, 0.8)))
  results = evaluate.compute_metrics(
      views, [0.1], [0.0], decoder_gate_sweep=[threshold],
      methods=('heatmap', 'kgnn2d'))
  masks = {'all': visibility > 0,
           'visible': visibility == labels.Visibility.VISIBLE,
           'occluded': visibility == labels.Visibility.OCCLUDED}
  for subset in evaluate.SWEEP_SUBSETS:
    assert results[metric_keys.gate_sweep(subset, threshold)] == (
        pytest.approx(np.mean(scores[masks[subset]] > threshold)))
  assert not any(key.startswith('gate_open') for key in results)
  # The model's own gate at `threshold`: where it opened, the 2D-KGNN is
  # exact and the heatmap a box off.
  results = evaluate.compute_metrics(
      views, [0.1], [0.0], decoder_gate_threshold=threshold,
      methods=('heatmap', 'kgnn2d'))
  for subset in evaluate.GATE_OPEN_SUBSETS:
    opened = scores[masks[subset]] > threshold
    assert results[metric_keys.gate_open(subset)] == pytest.approx(
        np.mean(opened))
    low, high = results[metric_keys.interval(metric_keys.gate_open(subset))]
    assert 0.0 <= low <= np.mean(opened) <= high <= 1.0
    if opened.any():
      assert results[metric_keys.gate_open_pck('kgnn2d', subset)] == 1.0
      assert results[metric_keys.gate_open_pck('heatmap', subset)] == 0.0
  # A gate above every score shuts on every keypoint: the heatmap's.
  np.testing.assert_array_equal(evaluate.gated_higher(
      views['kgnn2d'], views['heatmap'], scores, float(scores.max())),
                                views['heatmap'])


def test_yaw_error_over_the_views_with_known_cameras(case):
  results = case['results']
  for method, offset in case['offsets'].items():
    errors = np.abs(offset[:-1])
    assert results[metric_keys.yaw_error(method, metric_keys.MEDIAN_DEG)] == (
        pytest.approx(np.median(errors), abs=1e-3))
    assert results[metric_keys.yaw_error(
        method, metric_keys.WITHIN_30DEG)] == pytest.approx(
            np.mean(errors <= 30))


def test_every_figure_has_an_interval_around_it(case):
  results = case['results']
  figures = [key for key in results if not key.endswith('_ci')
             and (metric_keys.try_parse(key) or metric_keys.MetricKey(''))
             .family in metric_keys.INTERVAL_FAMILIES]
  assert {metric_keys.parse(key).family for key in figures} == set(
      metric_keys.INTERVAL_FAMILIES) - {'pck_labels', 'pck_box_jitter'}
  for key in figures:
    value, interval = results[key], results[metric_keys.interval(key)]
    if value is None:
      assert interval is None
    else:
      low, high = interval
      assert low <= value + 1e-9 and value <= high + 1e-9, key


def test_oracle_inputs_hold_no_occluded_position(rng):
  visibility = rng.integers(0, 3, (4, 3, 12))
  truth = rng.normal(size=(4, 3, 12, 2))
  moved = np.where((visibility != labels.Visibility.VISIBLE)[..., None],
                   truth + rng.normal(size=truth.shape), truth)
  inputs = evaluate.oracle_inputs(
      {'visibility': visibility, 'true_keypoints': truth})
  np.testing.assert_array_equal(inputs, evaluate.oracle_inputs(
      {'visibility': visibility, 'true_keypoints': moved}))
  assert np.all(np.isnan(inputs[visibility != labels.Visibility.VISIBLE]))


def test_intervals_resample_physical_cars_not_frames(case, rng):
  # Record r (a car at a frame) shows instance r // 4 of sequence r % 2 at
  # frame r: records 0 and 2, and 1 and 3, are one physical car each.
  records = np.repeat(np.arange(NUM_CARS), NUM_VIEWS)
  names = [f'seq{rng.integers(100)}_{parity}' for parity in range(2)]
  sequences = [names[record % 2] for record in records]
  by_frame = dict(case['views'], car_id=np.array([
      labels.carfusion_car_id(sequence, record, record // 4)
      for sequence, record in zip(sequences, records)]))
  physical = dict(case['views'], car_id=np.array([
      f'{sequence}/{record // 4}'
      for sequence, record in zip(sequences, records)]))
  results = evaluate.compute_metrics(by_frame, [0.1], [0.0])
  expected = evaluate.compute_metrics(physical, [0.1], [0.0])
  assert results['num_cars'] == len(set(physical['car_id'])) == 4
  # The same weights whatever frame a record was seen in: every interval
  # is the one of resampling the physical cars.
  intervals = [key for key in results if key.endswith(metric_keys.CI_SUFFIX)]
  assert intervals
  for key in intervals:
    assert results[key] == expected[key], key


def test_a_physical_car_is_its_sequence_and_instance(rng):
  sequence, instance = f'seq{rng.integers(1000)}', int(rng.integers(20))
  frames = rng.choice(1000, 2, replace=False)
  first, second = (labels.carfusion_car_id(sequence, f, instance)
                   for f in frames)
  assert first != second
  assert labels.physical_car(first) == labels.physical_car(second)
  assert labels.physical_car(first) != labels.physical_car(
      labels.carfusion_car_id(sequence, frames[0], instance + 1))
  model = f'procedural/{rng.integers(10000):05d}'
  assert labels.physical_car(model) == model
