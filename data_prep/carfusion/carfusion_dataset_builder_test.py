"""Tests of the `carfusion` builder on `dummy_data/` (raw files in the layout).

The dummy data (160x120 frames, focal length one image width, principal point
at the centre, so PnP is exact) has:

* train/craig_sim: calibrated cameras 01-03 and a car whose 3D keypoints are
  1.05 x the mean shape; camera 04 is not in the calibration (PnP). Labels
  carry the sixth column (occlusion kind); one line has an invalid kind.
  bb/ boxes for cameras 01-03 (02's file also has a malformed line and a
  duplicate); camera 04 has no bb file.
* train/fifth_sim: no calibration. Frame 0000: car 0 in 3 views; car 5 in 2;
  car 7 with one labelled point; car 8 with four collinear points; a line with
  each parser defect. Frame 0001: an empty gt file and a view with 3 visible
  points, so car 0 has one usable view. Plus a gt file without image, an
  image without gt file and an undecodable image.
* test/penn_sim (no calibration), test/penn_badcalib (malformed calibration):
  one car in 3 views each.

Only craig_sim has bb/; the other sequences get boxes from the visible
keypoints.
"""

import logging
import shutil

from etils import epath
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import carfusion_format
from data_prep.carfusion import carfusion_dataset_builder as builder_lib
from occnet_jax import cropping
from occnet_jax import geometry
from occnet_jax import labels
from occnet_jax import shape_basis
from occnet_jax.categories import car as car_lib

DUMMY_DATA = epath.Path(__file__).parent / 'dummy_data'
CONFIG = builder_lib.Builder.BUILDER_CONFIGS[0]
EXPECTED_ISSUES = {
    'train': {
        'view_without_calibrated_pose': 1,
        'invalid_occlusion_kind': 1,
        'sequence_without_calibration': 1,
        'wrong_column_count': 1,
        'non_numeric': 1,
        'non_finite': 1,
        'keypoint_id_out_of_range': 1,
        'visibility_out_of_range': 1,
        'duplicate_keypoint': 1,
        'outside_image': 1,
        'unused_keypoint_slot': 1,
        'degenerate_box': 1,
        'pnp_failed': 1,
        'too_few_views': 4,
        'empty_gt_file': 1,
        'too_few_points_for_pnp': 1,
        'gt_without_image': 1,
        'image_without_gt': 1,
        'unreadable_image': 1,
        'sequence_without_boxes': 1,
        'malformed_box_line': 1,
        'duplicate_box': 1,
        'car_without_box': 1,
    },
    'test': {
        'sequence_without_calibration': 1,
        'unreadable_calibration': 1,
        'sequence_without_boxes': 2,
    },
}
EXPECTED_CARS = {
    'train': ['craig_sim/0000/1', 'fifth_sim/0000/0'],
    'test': ['penn_badcalib/0000/2', 'penn_sim/0000/2'],
}
CAMERAS = {'craig_sim': ('01', '02', '03', '04')}
MEAN_SHAPE = np.asarray(car_lib.CAR.mean_shape)


@pytest.fixture(scope='module')
def generated():
  """{split: (examples by car id, issues)} straight from the generator."""
  splits = {}
  for split in EXPECTED_CARS:
    issues = carfusion_format.Issues(builder_lib.BUILD_ISSUES)
    examples = dict(builder_lib.split_examples(DUMMY_DATA / split, CONFIG,
                                               issues))
    splits[split] = examples, issues
  return splits


def project(camera, points):
  return np.asarray(geometry.project(camera, points)[0])


def view_files(car_id):
  sequence, frame, _ = car_id.split('/')
  split = next(s for s, cars in EXPECTED_CARS.items() if car_id in cars)
  cameras = CAMERAS.get(sequence, ('01', '02', '03'))
  return [carfusion_format.view_paths(DUMMY_DATA / split / sequence, camera,
                                      frame) for camera in cameras]


@pytest.mark.parametrize('split', ['train', 'test'])
def test_every_skip_is_counted_by_reason(generated, split):
  examples, issues = generated[split]
  assert sorted(examples) == EXPECTED_CARS[split]
  assert issues.counts == EXPECTED_ISSUES[split]


def test_calibrated_cameras_project_the_car_onto_its_labels(generated):
  example = generated['train'][0]['craig_sim/0000/1']
  shape_3d = example['shape_3d']
  np.testing.assert_allclose(shape_3d, 1.05 * MEAN_SHAPE, rtol=1e-6)
  np.testing.assert_array_equal(example['camera_error'][:3], 0.0)
  for view in range(3):
    labelled = example['visibility'][view] > 0
    # Synthetic labels are true projections, occluded ones included (3 d.p.).
    np.testing.assert_allclose(
        project(example['cameras'][view], shape_3d)[labelled],
        example['keypoints'][view][labelled], atol=2e-3)
  # Camera 04 is uncalibrated: PnP against the mean shape is exact up to the
  # shape's scale, which PnP absorbs into the distance.
  visible = example['visibility'][3] == labels.Visibility.VISIBLE
  assert 0 < example['camera_error'][3] < 2e-3
  np.testing.assert_allclose(
      project(example['cameras'][3], MEAN_SHAPE)[visible],
      example['keypoints'][3][visible], atol=2e-3)


def test_occlusion_kinds_come_from_the_sixth_column(generated):
  example = generated['train'][0]['craig_sim/0000/1']
  visibility, kinds = example['visibility'], example['occlusion_kind']
  assert np.all(kinds[visibility == labels.Visibility.VISIBLE] ==
                labels.OcclusionKind.VISIBLE)
  occluded = visibility == labels.Visibility.OCCLUDED
  assert set(kinds[occluded]) == {labels.OcclusionKind.SELF,
                                  labels.OcclusionKind.OTHER_VEHICLE}
  assert kinds[1, 11] == labels.OcclusionKind.OTHER_VEHICLE
  # The line with an invalid kind (12, 30) did not displace the valid label.
  assert not np.any(np.all(example['keypoints'] == (12.0, 30.0), axis=-1))


def _assert_cameras_project_the_mean_car(example):
  """fifth_sim/0000/0's labels are projections of the mean car (3 d.p.)."""
  assert np.all(example['camera_error'] < 2e-3)
  for view in range(3):
    visible = example['visibility'][view] == labels.Visibility.VISIBLE
    np.testing.assert_allclose(
        project(example['cameras'][view], MEAN_SHAPE)[visible],
        example['keypoints'][view][visible], atol=2e-3)


def test_uncalibrated_cameras_come_from_pnp(generated):
  example = generated['train'][0]['fifth_sim/0000/0']
  assert example['cameras'].shape == (3, 3, 4)
  np.testing.assert_array_equal(example['shape_3d'], 0.0)
  _assert_cameras_project_the_mean_car(example)
  kinds = example['occlusion_kind']
  assert np.all(kinds == np.where(example['visibility'] == 1,
                                  labels.OcclusionKind.VISIBLE,
                                  labels.OcclusionKind.UNKNOWN))


def test_a_fitted_shape_basis_replaces_the_mean_shape_for_pnp(tmp_path):
  rng = np.random.default_rng(0)
  shapes = MEAN_SHAPE + rng.normal(0.0, 0.2, (20, *MEAN_SHAPE.shape))
  basis = shape_basis.fit_shape_basis(shapes, num_components=3)
  path = tmp_path / 'basis.npz'
  shape_basis.save(path, basis)
  config = builder_lib.CarfusionConfig(name='fitted',
                                       shape_basis_path=str(path))
  shape = builder_lib.pnp_shape(config)
  np.testing.assert_array_equal(shape, basis.mean)
  issues = carfusion_format.Issues(builder_lib.BUILD_ISSUES)
  examples = dict(builder_lib.sequence_examples(
      DUMMY_DATA / 'train' / 'fifth_sim', config, shape, issues))
  # The labels are projections of the mean car, not of the fitted mean.
  assert np.all(examples['fifth_sim/0000/0']['camera_error'] > 0.05)


def test_first_of_duplicate_labels_is_kept(generated):
  example = generated['train'][0]['fifth_sim/0000/0']
  gt_path, _ = view_files('fifth_sim/0000/0')[0]
  x, y, *_ = (float(v) for v in gt_path.read_text().split('\n')[0].split(','))
  np.testing.assert_array_equal(example['keypoints'][0, 0], np.float32([x, y]))


def expected_box(car_id, view, example):
  """The bb/ box of the view, padded, else the padded visible hull."""
  gt_path, _ = view_files(car_id)[view]
  box_path, _ = carfusion_format.side_paths(
      gt_path.parent.parent, *gt_path.stem.split('_'))
  if box_path.exists():
    first = box_path.read_text().splitlines()[0]
    tight = np.array([float(v) for v in first.split(',')[1:]])
    return cropping.padded_box(tight.reshape(2, 2))
  visible = example['visibility'][view] == labels.Visibility.VISIBLE
  return cropping.padded_box(example['keypoints'][view][visible])


@pytest.mark.parametrize('split', ['train', 'test'])
def test_boxes_come_from_bb_files_else_the_visible_points(generated, split):
  issues = carfusion_format.Issues(builder_lib.BUILD_ISSUES)
  num_from_files = 0
  for car_id, example in generated[split][0].items():
    files = view_files(car_id)
    assert len(files) == len(example['crops'])
    for view, (_, image_path) in enumerate(files):
      box = expected_box(car_id, view, example)
      num_from_files += car_id.startswith('craig_sim') and view < 3
      np.testing.assert_allclose(example['boxes'][view], box, rtol=1e-6)
      visible = example['visibility'][view] == labels.Visibility.VISIBLE
      points = example['keypoints'][view][visible]
      assert np.all((points >= box[:2]) & (points <= box[2:]))
      image = carfusion_format.read_image(image_path, issues)
      np.testing.assert_array_equal(example['image_size'][view], (160, 120))
      np.testing.assert_array_equal(
          example['crops'][view],
          cropping.extract_crop(image, example['boxes'][view],
                               CONFIG.crop_size))
  assert num_from_files == (3 if split == 'train' else 0)
  assert not issues.counts


def test_visible_hull_config_ignores_bb_files(generated):
  config = next(c for c in builder_lib.Builder.BUILDER_CONFIGS
                if c.name == 'visible_hull')
  issues = carfusion_format.Issues(builder_lib.BUILD_ISSUES)
  examples = dict(builder_lib.split_examples(DUMMY_DATA / 'train', config,
                                             issues))
  # The bb/ files are never opened: none of their issues, nor a missing bb/.
  expected = {name: count for name, count in EXPECTED_ISSUES['train'].items()
              if name not in ('sequence_without_boxes', 'malformed_box_line',
                              'duplicate_box', 'car_without_box')}
  assert issues.counts == expected
  num_differ = 0
  for car_id, example in examples.items():
    reference = generated['train'][0][car_id]
    for view in range(len(example['boxes'])):
      visible = example['visibility'][view] == labels.Visibility.VISIBLE
      hull = cropping.padded_box(example['keypoints'][view][visible])
      np.testing.assert_allclose(example['boxes'][view], hull, rtol=1e-6)
      num_differ += not np.allclose(reference['boxes'][view], hull)
  # The default config's bb/ boxes (craig_sim's first three views) differ.
  assert num_differ == 3


def _move_occluded_labels(sequence_dir: epath.Path, shift: float) -> int:
  """Moves every occluded label of a sequence's gt files; returns how many."""
  moved = 0
  for gt_path in (sequence_dir / carfusion_format.GT_DIR).iterdir():
    lines = []
    for text in gt_path.read_text().splitlines():
      fields = [f.strip() for f in text.split(',')]
      if len(fields) >= 5 and fields[4] == str(carfusion_format.RAW_OCCLUDED):
        try:
          fields[0] = repr(float(fields[0]) + shift)
          moved += 1
        except ValueError:
          pass
      lines.append(', '.join(fields))
    gt_path.write_text('\n'.join(lines) + '\n')
  return moved


@pytest.mark.parametrize('sequence', ['craig_sim', 'fifth_sim'])
def test_occluded_labels_move_neither_boxes_nor_crops(generated, sequence,
                                                      tmp_path):
  copy = tmp_path / sequence
  shutil.copytree(DUMMY_DATA / 'train' / sequence, copy)
  assert _move_occluded_labels(copy, shift=7.0) > 0
  issues = carfusion_format.Issues(builder_lib.BUILD_ISSUES)
  moved = dict(builder_lib.sequence_examples(
      copy, CONFIG, builder_lib.pnp_shape(CONFIG), issues))
  original = {car_id: example for car_id, example in
              generated['train'][0].items() if car_id.startswith(sequence)}
  assert sorted(moved) == sorted(original)
  for car_id, example in original.items():
    occluded = example['visibility'] == labels.Visibility.OCCLUDED
    assert not np.array_equal(moved[car_id]['keypoints'][occluded],
                              example['keypoints'][occluded])
    np.testing.assert_array_equal(moved[car_id]['boxes'], example['boxes'])
    np.testing.assert_array_equal(moved[car_id]['crops'], example['crops'])


def test_tfds_build_reads_back_every_example(generated, tmp_path, caplog):
  builder = builder_lib.Builder(data_dir=tmp_path, file_format='array_record')
  assert builder.name == 'carfusion'
  with caplog.at_level(logging.INFO):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=DUMMY_DATA))
  summaries = [r.getMessage() for r in caplog.records
               if 'build summary' in r.getMessage()]
  assert len(summaries) == 2
  assert any('4  too_few_views' in summary for summary in summaries)
  for split, cars in EXPECTED_CARS.items():
    source = builder.as_data_source(split)
    assert len(source) == len(cars)
    records_by_id = {}
    for record in source:
      car_id = record['car_id']
      records_by_id[car_id.decode() if isinstance(car_id, bytes) else
                    car_id] = record
    assert sorted(records_by_id) == cars
    for car_id, example in generated[split][0].items():
      record = records_by_id[car_id]
      for name, value in example.items():
        if name != 'car_id':
          np.testing.assert_array_equal(record[name], value, err_msg=name)
          assert record[name].dtype == value.dtype, name


def test_manual_dir_without_splits_is_an_error(tmp_path):
  builder = builder_lib.Builder(data_dir=tmp_path / 'data')
  (tmp_path / 'manual' / 'val').mkdir(parents=True)
  with pytest.raises(FileNotFoundError,
                     match='No train, validation or test directory'):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=tmp_path / 'manual'))


def test_views_calibrated_from_the_car_fit_its_labels():
  # fifth_sim's labels are projections of the mean car at a focal length of
  # one image width: the reconstruction keeps that exact solution.
  config = builder_lib.CarfusionConfig(name='multiview', calibrate_views=True)
  issues = carfusion_format.Issues(builder_lib.BUILD_ISSUES)
  examples = dict(builder_lib.sequence_examples(
      DUMMY_DATA / 'train' / 'fifth_sim', config,
      builder_lib.pnp_shape(config), issues))
  example = examples['fifth_sim/0000/0']
  _assert_cameras_project_the_mean_car(example)
  # Exact labels: every view with enough visible points converges.
  assert 'view_not_converged' not in issues.counts
