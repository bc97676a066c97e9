"""Tests of the CarFusion raw-format reader/writer and the record helpers."""

import collections
import json

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

from data_prep import carfusion_format
from occnet_jax import cropping
from occnet_jax import labels
from occnet_jax.categories import car as car_lib

WIDTH, HEIGHT = 640, 480
USED_IDS = tuple(slot + 1 for slot in car_lib.CAR.keypoint_to_raw_slot)
UNUSED_IDS = tuple(
    slot + 1 for slot, k in enumerate(car_lib.CAR.raw_slot_to_keypoint)
    if k < 0)
BAD_WORDS = ('abc', 'x1', '1.2.3', '--', '0x10', 'one', '1e', '+')
NON_FINITE_WORDS = ('nan', 'NaN', 'inf', '-inf', 'Infinity')
FIELD_SEPARATORS = (',', ', ', ' , ')


def new_issues():
  return carfusion_format.Issues(carfusion_format.PARSE_ISSUES)


def consistent_kind(visibility):
  if visibility in carfusion_format.RAW_VISIBLE:
    return st.just(int(labels.OcclusionKind.VISIBLE))
  # Truncation (4) is for points outside the image only.
  return st.sampled_from((1, 2, 3, 5))


@st.composite
def valid_lines(draw, keypoint_ids=USED_IDS):
  x = draw(st.floats(0, WIDTH, exclude_max=True))
  y = draw(st.floats(0, HEIGHT, exclude_max=True))
  visibility = draw(st.sampled_from((1, 2, 3)))
  kind = draw(st.none() | consistent_kind(visibility))
  return carfusion_format.GtLine(x, y, draw(st.sampled_from(keypoint_ids)),
                                 draw(st.integers(0, 3)), visibility, kind)


def fields_of(line):
  fields = [repr(line.x), repr(line.y), str(line.keypoint_id),
            str(line.instance_id), str(line.visibility)]
  return fields + ([] if line.occlusion_kind is None else
                   [str(line.occlusion_kind)])


@st.composite
def malformed_lines(draw):
  """(reason, text, line or None): a line with exactly one defect."""
  line = draw(valid_lines())
  reason = draw(st.sampled_from(
      ('wrong_column_count', 'non_numeric', 'non_integer', 'non_finite',
       'keypoint_id_out_of_range', 'visibility_out_of_range',
       'invalid_occlusion_kind', 'outside_image', 'unused_keypoint_slot')))
  fields = fields_of(line)
  if reason == 'wrong_column_count':
    count = draw(st.sampled_from((1, 2, 3, 4, 7, 8)))
    fields = (fields * 2)[:count]
  elif reason == 'non_numeric':
    fields[draw(st.integers(0, len(fields) - 1))] = draw(
        st.sampled_from(BAD_WORDS))
  elif reason == 'non_integer':
    reason = 'non_numeric'
    fields[draw(st.integers(2, len(fields) - 1))] = '2.5'
  elif reason == 'non_finite':
    fields[draw(st.integers(0, len(fields) - 1))] = draw(
        st.sampled_from(NON_FINITE_WORDS))
  elif reason == 'keypoint_id_out_of_range':
    fields[2] = str(draw(st.integers(-5, 0) | st.integers(15, 99)))
  elif reason == 'visibility_out_of_range':
    fields[4] = str(draw(st.sampled_from((-1, 0, 4, 5, 9))))
  elif reason == 'invalid_occlusion_kind':
    visible = line.visibility in carfusion_format.RAW_VISIBLE
    wrong = draw(st.sampled_from((-1, 6, 9, *((1, 2, 3, 4, 5) if visible
                                                else (0, 4)))))
    fields = fields[:5] + [str(wrong)]
  elif reason == 'outside_image':
    axis = draw(st.integers(0, 1))
    limit = float((WIDTH, HEIGHT)[axis])
    # The image spans [0, size): the far edge itself is outside.
    fields[axis] = repr(draw(st.floats(-1e4, 0, exclude_max=True) |
                             st.just(limit) | st.floats(limit, 1e4)))
    return reason, draw(st.sampled_from(FIELD_SEPARATORS)).join(fields), line
  else:
    fields[2] = str(draw(st.sampled_from(UNUSED_IDS)))
  return reason, draw(st.sampled_from(FIELD_SEPARATORS)).join(fields), None


@st.composite
def truncation_labels(draw):
  """(None, text, None, key): an occluded kind-4 line outside the image."""
  line = draw(valid_lines())
  x = draw(st.floats(-1e4, 0, exclude_max=True) | st.floats(WIDTH, 1e4))
  line = line._replace(x=x, visibility=carfusion_format.RAW_OCCLUDED,
                       occlusion_kind=int(labels.OcclusionKind.TRUNCATION))
  text = draw(st.sampled_from(FIELD_SEPARATORS)).join(fields_of(line))
  return 'truncation_label', text, line


@st.composite
def good_entries(draw):
  line = draw(valid_lines())
  separator = draw(st.sampled_from(FIELD_SEPARATORS + (' ', '\t')))
  return None, separator.join(fields_of(line)), line


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(st.lists(good_entries() | malformed_lines() |
                           truncation_labels() |
                           st.just((None, '  ', None)), max_size=40))
def test_parser_keeps_every_valid_line_and_counts_every_bad_one(entries):
  issues = new_issues()
  instances = carfusion_format.parse_gt_lines(
      [text for _, text, _ in entries], image_size=(WIDTH, HEIGHT),
      source='generated.txt', issues=issues)

  expected_counts = collections.Counter()
  kept = {}
  truncated = set()
  for reason, _, line in entries:
    if line is not None:
      key = (line.instance_id,
             car_lib.CAR.raw_slot_to_keypoint[line.keypoint_id - 1])
    if reason in ('outside_image', 'truncation_label'):
      truncated.add(key)
    if reason == 'truncation_label':
      continue  # A label, not an issue.
    if reason is None and line is not None:
      if key in kept:
        reason = 'duplicate_keypoint'
      else:
        kept[key] = line
    if reason is not None:
      expected_counts[reason] += 1
  assert issues.counts == expected_counts

  num_labelled = sum(int(np.sum(instance.visibility > 0))
                     for instance in instances.values())
  assert num_labelled == len(kept)
  for (instance_id, k), line in kept.items():
    instance = instances[instance_id]
    np.testing.assert_array_equal(instance.keypoints[k],
                                  np.float32([line.x, line.y]))
    visible = line.visibility in carfusion_format.RAW_VISIBLE
    assert instance.visibility[k] == (labels.Visibility.VISIBLE if visible
                                      else labels.Visibility.OCCLUDED)
    default_kind = (labels.OcclusionKind.VISIBLE if visible else
                    labels.OcclusionKind.UNKNOWN)
    assert instance.occlusion_kind[k] == (
        default_kind if line.occlusion_kind is None else line.occlusion_kind)
  for instance_id, instance in instances.items():
    for k in np.flatnonzero(instance.visibility == 0):
      assert instance.occlusion_kind[k] == (
          labels.OcclusionKind.TRUNCATION if (instance_id, k) in truncated
          else labels.OcclusionKind.UNKNOWN)
      np.testing.assert_array_equal(instance.keypoints[k], 0.0)


def test_written_instance_lines_read_back_exactly(rng, tmp_path):
  num_keypoints = car_lib.CAR.num_keypoints
  points = rng.uniform((0, 0), (WIDTH, HEIGHT), (num_keypoints, 2))
  visibility = rng.integers(0, 3, num_keypoints)
  kinds = np.where(visibility == labels.Visibility.VISIBLE, 0,
                   rng.choice([1, 2, 3, 5], num_keypoints))
  # Some unlabelled points are truncated: written outside the image.
  truncated = (visibility == 0) & (rng.uniform(size=num_keypoints) < 0.5)
  kinds[truncated] = labels.OcclusionKind.TRUNCATION
  points[truncated, 0] += WIDTH
  instance_id = int(rng.integers(0, 100))
  path = tmp_path / 'gt' / '01_0000.txt'
  carfusion_format.write_gt_file(path, carfusion_format.instance_gt_lines(
      instance_id, points, visibility, kinds))
  issues = new_issues()
  instances = carfusion_format.read_gt_file(
      path, image_size=(WIDTH, HEIGHT), issues=issues)
  assert not issues.counts
  if not np.any(visibility):
    assert instances == {}
    return
  instance = instances[instance_id]
  labelled = visibility > 0
  np.testing.assert_array_equal(instance.visibility, visibility)
  np.testing.assert_array_equal(instance.keypoints[labelled],
                                points[labelled].astype(np.float32))
  np.testing.assert_array_equal(instance.occlusion_kind[labelled],
                                kinds[labelled])
  np.testing.assert_array_equal(
      instance.occlusion_kind[~labelled],
      np.where(truncated, labels.OcclusionKind.TRUNCATION,
               labels.OcclusionKind.UNKNOWN)[~labelled])
  raw_ids = [int(text.split(',')[2]) for text in path.read_text().split('\n')
             if text]
  assert not set(raw_ids) & set(UNUSED_IDS)


def test_unreadable_and_empty_files_are_counted(tmp_path):
  issues = new_issues()
  empty = tmp_path / 'empty.txt'
  empty.write_text('\n  \n')
  binary = tmp_path / 'binary.txt'
  binary.write_bytes(b'\xff\xfe\x00\x81')
  for path in (empty, binary, tmp_path / 'missing.txt'):
    assert carfusion_format.read_gt_file(
        path, image_size=(WIDTH, HEIGHT), issues=issues) == {}
  broken_image = tmp_path / 'broken.jpg'
  broken_image.write_bytes(b'not a jpeg')
  assert carfusion_format.read_image(broken_image, issues) is None
  assert issues.counts == {'empty_gt_file': 1, 'unreadable_gt_file': 2,
                           'unreadable_image': 1}


def test_list_views_pairs_files_and_counts_orphans(rng, tmp_path):
  image = rng.integers(0, 256, (HEIGHT // 8, WIDTH // 8, 3), np.uint8)
  line = carfusion_format.GtLine(5.0, 6.0, 1, 0, 1)
  for camera, frame in (('01', '0000'), ('02', '0000'), ('01', '0001')):
    carfusion_format.write_view(tmp_path, camera, frame, image, [line])
  gt_only, _ = carfusion_format.view_paths(tmp_path, '03', '0000')
  carfusion_format.write_gt_file(gt_only, [line])
  _, image_only = carfusion_format.view_paths(tmp_path, '04', '0001')
  image_only.write_bytes(b'')
  (tmp_path / 'gt' / 'nocamera.txt').write_text('1, 1, 1, 0, 1\n')
  (tmp_path / 'gt' / 'notes.md').write_text('not a label file')

  issues = new_issues()
  views = carfusion_format.list_views(tmp_path, issues)
  assert [(v.camera, v.frame) for v in views] == [
      ('01', '0000'), ('02', '0000'), ('01', '0001')]
  assert issues.counts == {'gt_without_image': 1, 'image_without_gt': 1,
                           'bad_file_name': 1}
  decoded = carfusion_format.read_image(views[0].image_path, issues)
  # JPEG is lossy: compare the mean colour, which survives it.
  np.testing.assert_allclose(decoded.mean((0, 1)), image.mean((0, 1)), atol=3)


def random_rotation(rng):
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))
  return q if np.linalg.det(q) > 0 else -q


def random_calibration(rng):
  cameras = {
      name: carfusion_format.CameraCalibration(
          intrinsics=np.array([[f, 0, WIDTH / 2], [0, f, HEIGHT / 2],
                               [0, 0, 1]]),
          rotation=random_rotation(rng), translation=rng.normal(size=3),
          image_size=(WIDTH, HEIGHT))
      for name, f in (('01', rng.uniform(300, 900)),
                      ('02', rng.uniform(300, 900)))
  }
  poses = {
      '0000': {
          3: carfusion_format.ObjectPose(
              random_rotation(rng), rng.normal(size=3),
              rng.normal(size=(car_lib.CAR.num_keypoints, 3))),
          7: carfusion_format.ObjectPose(random_rotation(rng),
                                         rng.normal(size=3)),
      }
  }
  return carfusion_format.SequenceCalibration(cameras, poses)


def test_calibration_round_trip_and_object_cameras(rng, tmp_path):
  calibration = random_calibration(rng)
  carfusion_format.write_calibration(tmp_path, calibration)
  loaded = carfusion_format.read_calibration(tmp_path)
  assert loaded.cameras.keys() == calibration.cameras.keys()
  for name, camera in calibration.cameras.items():
    np.testing.assert_array_equal(loaded.cameras[name].rotation,
                                  camera.rotation)
    np.testing.assert_array_equal(loaded.cameras[name].intrinsics,
                                  camera.intrinsics)
    assert loaded.cameras[name].image_size == camera.image_size
  np.testing.assert_array_equal(loaded.poses['0000'][3].shape_3d,
                                calibration.poses['0000'][3].shape_3d)
  assert loaded.poses['0000'][7].shape_3d is None

  # A point in the car's frame projects like its world position does.
  object_points = rng.normal(size=(5, 3))
  pose = calibration.poses['0000'][7]
  world_points = object_points @ pose.rotation.T + pose.translation
  camera = calibration.cameras['02']
  world_camera = camera.intrinsics @ np.concatenate(
      [camera.rotation, camera.translation[:, None]], 1)
  object_camera = loaded.object_camera('02', '0000', 7)

  def dehomogenise(camera_matrix, points):
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], 1)
    projected = homogeneous @ camera_matrix.T
    return projected[:, :2] / projected[:, 2:]

  np.testing.assert_allclose(dehomogenise(object_camera, object_points),
                             dehomogenise(world_camera, world_points),
                             rtol=1e-4, atol=1e-3)
  assert loaded.object_camera('03', '0000', 7) is None
  assert loaded.object_camera('02', '0001', 7) is None
  assert loaded.object_camera('02', '0000', 4) is None


@pytest.mark.parametrize('corrupt', [
    lambda data: data.update(version=2),
    lambda data: data['cameras']['01'].update(R=[[1, 0, 0], [0, 1, 0],
                                                 [0, 0, -1]]),
    lambda data: data['cameras']['01'].update(K=[[1, 0], [0, 1]]),
    lambda data: data['cameras']['01'].update(image_size=[640.5, 480]),
    lambda data: data['cameras']['02'].pop('t'),
    lambda data: data['frames']['0000'].update(car=data['frames']['0000'][
        '3']),
    lambda data: data['frames']['0000']['3'].update(shape_3d=[[0, 0, 0]]),
    lambda data: data['frames']['0000']['3'].update(t=[0, 'x', 1]),
])
def test_malformed_calibration_raises(corrupt, rng, tmp_path):
  data = carfusion_format.calibration_to_json(random_calibration(rng))
  corrupt(data)
  (tmp_path / carfusion_format.CALIBRATION_FILE).write_text(json.dumps(data))
  with pytest.raises(carfusion_format.CalibrationError):
    carfusion_format.read_calibration(tmp_path)


def test_calibration_file_missing_or_not_json(tmp_path):
  with pytest.raises(FileNotFoundError):
    carfusion_format.read_calibration(tmp_path)
  (tmp_path / carfusion_format.CALIBRATION_FILE).write_text('{"version": ')
  with pytest.raises(carfusion_format.CalibrationError):
    carfusion_format.read_calibration(tmp_path)


def test_padded_box_pads_the_points(rng):
  points = rng.uniform(-50, 500, (int(rng.integers(2, 12)), 2))
  box = cropping.padded_box(points, padding=0.1)
  extent = points.max(0) - points.min(0)
  np.testing.assert_allclose(box[:2], points.min(0) - 0.1 * extent, rtol=1e-5)
  np.testing.assert_allclose(box[2:], points.max(0) + 0.1 * extent, rtol=1e-5)
  with pytest.raises(ValueError):
    cropping.padded_box(np.zeros((0, 2)))


@pytest.mark.parametrize('box_size', [20.0, 150.0, 400.0])
def test_crop_samples_the_box_of_a_linear_image(box_size, rng):
  # Bilinear interpolation and area averaging reproduce a linear image
  # exactly, so every crop pixel must equal the image's value at the crop
  # pixel's centre mapped back to the frame (up to uint8 rounding).
  height, width, crop_size = 300, 420, 16
  gradients = rng.uniform(-0.4, 0.4, (3, 2)) * 300 / max(height, width)
  offsets = 128 - gradients @ np.array([width / 2, height / 2])
  columns, rows = np.meshgrid(np.arange(width) + 0.5,
                              np.arange(height) + 0.5)
  image = (columns[..., None] * gradients[:, 0] +
           rows[..., None] * gradients[:, 1] + offsets)
  image = np.round(image).clip(0, 255).astype(np.uint8)
  size = np.array([box_size, box_size * rng.uniform(0.5, 0.7)])
  origin = rng.uniform(2, np.array([width, height]) - size - 2)
  box = np.concatenate([origin, origin + size])

  crop = cropping.extract_crop(image, box, crop_size)

  centres = (np.arange(crop_size) + 0.5) / crop_size
  crop_columns, crop_rows = np.meshgrid(box[0] + centres * size[0],
                                        box[1] + centres * size[1])
  expected = (crop_columns[..., None] * gradients[:, 0] +
              crop_rows[..., None] * gradients[:, 1] + offsets)
  assert crop.shape == (crop_size, crop_size, 3) and crop.dtype == np.uint8
  np.testing.assert_allclose(crop, expected, atol=1.6)


def test_crop_is_zero_outside_the_image():
  image = np.full((100, 200, 3), 200, np.uint8)
  box = np.array([150.0, -40.0, 250.0, 60.0])  # Right half and top outside.
  crop = cropping.extract_crop(image, box, 20)
  # Crop pixel (i, j) covers frame x in 150 + 5 [j, j + 1) and y in
  # -40 + 5 [i, i + 1); pixels wholly inside or outside the image are exact.
  assert np.all(crop[10:, :9] == 200)
  assert np.all(crop[:7] == 0) and np.all(crop[:, 11:] == 0)


@pytest.mark.parametrize('line', [
    carfusion_format.GtLine(1.0, 2.0, 15, 0, 1),
    carfusion_format.GtLine(1.0, 2.0, 3, 0, 4),
    carfusion_format.GtLine(1.0, 2.0, 3, 0, 2, 0),
    carfusion_format.GtLine(float('nan'), 2.0, 3, 0, 1),
])
def test_writers_reject_what_the_reader_would_skip(line, tmp_path):
  with pytest.raises(ValueError):
    carfusion_format.write_gt_file(tmp_path / 'gt.txt', [line])
  with pytest.raises(ValueError):
    carfusion_format.write_view(tmp_path, 'cam_1', '0000',
                                np.zeros((4, 4, 3), np.uint8), [])
  assert not (tmp_path / 'gt').exists() and not (tmp_path / 'gt.txt').exists()


def test_byte_order_mark_is_not_data(tmp_path):
  path = tmp_path / '01_0000.txt'
  path.write_text('\ufeff10.5, 20, 1, 0, 1\n', encoding='utf-8')
  issues = new_issues()
  instances = carfusion_format.read_gt_file(
      path, image_size=(WIDTH, HEIGHT), issues=issues)
  assert not issues.counts
  np.testing.assert_array_equal(instances[0].keypoints[0], (10.5, 20.0))
