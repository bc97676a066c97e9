"""Values of a tiny built `car_render` set: labels, splits, multi-view geometry.

The set is built once per module (procedural cars) into a temporary TFDS
data dir. Besides the record's own consistency this checks what the
trifocal loss relies on: a keypoint occluded in one view is recovered by
trifocal transfer from two views where it is visible, exactly with the
stored cameras and approximately with PnP poses (printed).
"""

import dataclasses

import cv2
import numpy as np
import pytest

from data_prep import dataset_report
from data_prep.car_render import car_render_dataset_builder as builder_lib
from data_prep.rendering import visibility as visibility_lib
from occnet_jax import boxes as boxes_lib
from occnet_jax import geometry
from occnet_jax import labels
from occnet_jax.categories import car as car_lib

SIZES = (8, 3, 3)
CONFIG = builder_lib.CarRenderConfig(
    name='tiny', num_procedural_models=SIZES, num_views=6, crop_size=32)
Visibility = labels.Visibility
OcclusionKind = labels.OcclusionKind


@pytest.fixture(scope='module')
def splits(tmp_path_factory, module_seed):
  builder = builder_lib.Builder(
      config=dataclasses.replace(CONFIG, seed=module_seed),
                                data_dir=tmp_path_factory.mktemp('tfds'))
  builder.download_and_prepare()
  return {split: list(source)
          for split, source in builder.as_data_source().items()}


@pytest.fixture(scope='module')
def examples(splits):
  return [example for split in splits.values() for example in split]


def _stack(examples, field):
  return np.stack([np.asarray(example[field]) for example in examples])


def test_splits_hold_disjoint_models(splits):
  assert [len(splits[split]) for split in builder_lib.SPLITS] == list(SIZES)
  ids = [{example['car_id'] for example in splits[split]}
         for split in builder_lib.SPLITS]
  assert sum(map(len, ids)) == sum(SIZES)
  assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_keypoints_are_projections_of_the_shape(examples):
  cameras = _stack(examples, 'cameras')
  shapes = _stack(examples, 'shape_3d')
  pixels, depth = geometry.project(cameras, shapes[:, None])
  np.testing.assert_allclose(_stack(examples, 'keypoints'), pixels, atol=2e-2)
  assert np.all(np.asarray(depth) > 0)
  boxes = _stack(examples, 'boxes')
  inside = ((pixels >= boxes[..., None, :2]) & (pixels <= boxes[..., None, 2:]))
  assert np.all(inside)
  np.testing.assert_array_equal(_stack(examples, 'camera_error'), 0.0)
  np.testing.assert_array_equal(_stack(examples, 'image_size'),
                                np.broadcast_to(CONFIG.image_size,
                                                cameras.shape[:2] + (2,)))


def test_visibility_codes_agree_with_kinds_and_a_ray_cast(examples,
                                                          module_seed):
  visibility = _stack(examples, 'visibility')
  kinds = _stack(examples, 'occlusion_kind')
  # A lone car: hidden keypoints are self-occluded or outside the frame.
  np.testing.assert_array_equal(visibility == Visibility.VISIBLE,
                                kinds == OcclusionKind.VISIBLE)
  np.testing.assert_array_equal(visibility == Visibility.OCCLUDED,
                                kinds == OcclusionKind.SELF)
  np.testing.assert_array_equal(visibility == Visibility.UNLABELLED,
                                kinds == OcclusionKind.TRUNCATION)
  assert 0.2 < np.mean(visibility == Visibility.VISIBLE) < 0.9
  # The depth-buffer labels agree with an independent float64 ray cast
  # against the same car (procedural cars are a function of the model's
  # seed), with the stored cameras.
  agree = []
  for example in examples:
    index = int(example['car_id'].decode().split('/')[1])
    car = car_lib.random_car(
        np.random.default_rng((module_seed, index)))
    np.testing.assert_allclose(example['shape_3d'], car.keypoints)
    cast = visibility_lib.views_keypoint_visibility_by_ray_cast(
        car.mesh, example['cameras'], car.keypoints, 0,
        np.array([visibility_lib.ObjectKind.VEHICLE]), CONFIG.image_size)
    agree.append((cast[0] == example['visibility'])
                 & (cast[1] == example['occlusion_kind']))
  print(f'ray-cast agreement {np.mean(agree):.4f} of {np.size(agree)} labels')
  assert np.mean(agree) > 0.99


def test_crops_show_the_car_over_a_background(examples):
  crops = _stack(examples, 'crops').astype(np.float64)
  assert crops.shape[2:] == (CONFIG.crop_size, CONFIG.crop_size, 3)
  assert np.all(crops.std(axis=(2, 3, 4)) > 5)


def _transfer_triplets(examples):
  """(example, keypoint, visible view a, occluded view o, visible view b)."""
  triplets = []
  for e, example in enumerate(examples):
    visibility = example['visibility']
    for k in range(visibility.shape[1]):
      seen = np.flatnonzero(visibility[:, k] == Visibility.VISIBLE)
      hidden = np.flatnonzero(visibility[:, k] == Visibility.OCCLUDED)
      if len(seen) >= 2:
        triplets += [(e, k, seen[0], o, seen[1]) for o in hidden]
  return np.array(triplets)


def _transfer_error(examples, cameras, triplets):
  e, k, a, o, b = triplets.T
  points = _stack(examples, 'keypoints')
  x2, valid = geometry.normalized_trifocal_transfer(
      cameras[e, a], cameras[e, o], cameras[e, b], points[e, a, k],
      points[e, b, k])
  error = np.linalg.norm(np.asarray(x2) - points[e, o, k], axis=-1)
  return error, np.asarray(valid)


def test_trifocal_transfer_recovers_occluded_keypoints(examples):
  triplets = _transfer_triplets(examples)
  assert len(triplets) > 20
  error, valid = _transfer_error(examples, _stack(examples, 'cameras'),
                                 triplets)
  print(f'calibrated transfer: {len(error)} occluded keypoints, '
        f'max {error[valid].max():.4f} px, valid {valid.mean():.3f}')
  assert valid.mean() > 0.95
  assert np.all(error[valid] < 1.0)


def _pnp_cameras(examples, shape_for):
  """Per-view PnP cameras from the visible keypoints, true intrinsics."""
  cameras = _stack(examples, 'cameras').astype(np.float64)
  solved = np.full_like(cameras, np.nan)
  for e, example in enumerate(examples):
    for v, camera in enumerate(cameras[e]):
      visible = example['visibility'][v] == Visibility.VISIBLE
      if visible.sum() < 4:
        continue
      intrinsics = cv2.decomposeProjectionMatrix(camera)[0]
      try:
        solved[e, v] = geometry.solve_pnp(
            shape_for(example)[visible], example['keypoints'][v][visible],
            intrinsics).projection
      except geometry.PnPError:
        pass
  return solved


@pytest.mark.parametrize('shape_name', ['true', 'mean'])
def test_trifocal_transfer_with_pnp_poses(examples, shape_name):
  shape_for = {
      'true': lambda example: example['shape_3d'],
      'mean': lambda example: car_lib.CAR.mean_shape,
  }[shape_name]
  triplets = _transfer_triplets(examples)
  cameras = _pnp_cameras(examples, shape_for)
  error, valid = _transfer_error(examples, cameras, triplets)
  boxes = _stack(examples, 'boxes')[triplets[:, 0], triplets[:, 3]]
  relative = error / np.asarray(boxes_lib.box_scale(boxes))
  print(f'PnP ({shape_name} shape) transfer: '
        f'median {np.median(error[valid]):.2f} px, '
        f'90% {np.percentile(error[valid], 90):.2f} px, median '
        f'{np.median(relative[valid]):.4f} of the box, '
        f'valid {valid.mean():.3f}')
  if shape_name == 'true':
    assert np.median(error[valid]) < 1.0
  else:
    assert np.median(relative[valid]) < 0.1


def test_dataset_report_counts_kinds_and_views(splits):
  train = splits['train']
  summary = dataset_report.summarise(train)
  kinds = _stack(train, 'occlusion_kind')
  assert summary.num_cars == SIZES[0]
  np.testing.assert_array_equal(
      summary.kind_counts, [np.sum(kinds == kind) for kind in OcclusionKind])
  assert summary.views_per_car == {CONFIG.num_views: SIZES[0]}
  hidden = np.sum(kinds != OcclusionKind.VISIBLE, axis=-1).ravel()
  assert summary.hidden_per_view == {
      int(h): int(np.sum(hidden == h)) for h in np.unique(hidden)}
  text = dataset_report.format_summary(summary)
  assert f'cars: {SIZES[0]}' in text and 'other vehicle' in text


def test_annotated_cars_from_the_default_manual_dir(tmp_path, rng,
                                                    build_car_render):
  # What README's "own CAD cars" recipe does: the keypoint file in the data
  # dir's downloads/manual, a build with no download config.
  count = int(rng.integers(14, 22))
  unit = float(rng.uniform(0.1, 2.0))  # Any length unit.
  shapes = unit * (car_lib.CAR.mean_shape[None]
                   + rng.normal(0, 0.05, (count, car_lib.CAR.num_keypoints,
                                          3)))
  manual = tmp_path / 'downloads' / 'manual'
  manual.mkdir(parents=True)
  path = manual / builder_lib.shapes_file('car')
  np.save(path, shapes)
  splits = build_car_render(CONFIG, 'annotated', count)
  expected = builder_lib.load_manual_shapes(path, car_lib.CAR)
  seen = set()
  for example in (e for split in splits.values() for e in split):
    car_id = example['car_id']
    kind, index = (car_id.decode() if isinstance(car_id, bytes)
                   else car_id).split('/')
    assert kind == 'annotated'
    seen.add(int(index))
    np.testing.assert_allclose(example['shape_3d'], expected[int(index)],
                               rtol=1e-5, atol=1e-5)
  assert seen == set(range(count))
  # Rescaled to the category's length whatever the unit.
  length = np.ptp(expected[..., 0], axis=-1).mean()
  assert length == pytest.approx(np.ptp(car_lib.CAR.mean_shape[:, 0]),
                                 rel=1e-6)
