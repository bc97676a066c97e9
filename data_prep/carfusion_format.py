"""The CarFusion raw layout: keypoint label files, images and calibration.

Real CarFusion and our synthetic intersections share one layout per split:

  <split>/<sequence>/images_jpg/<camera>_<frame>.jpg
  <split>/<sequence>/gt/<camera>_<frame>.txt
  <split>/<sequence>/bb/<camera>_<frame>.txt       (optional; see below)
  <split>/<sequence>/gt_true/<camera>_<frame>.txt  (ours, optional)
  <split>/<sequence>/calibration.json              (ours, optional)

A gt line labels one keypoint of one car:

  x, y, keypoint_id, instance_id, visibility[, occlusion_kind]

in full-frame pixels; keypoint_id is the 1-based CarFusion slot (1..14, see
`categories.car.CAR.raw_slot_to_keypoint`; Exhaust and Center are ignored);
visibility 1 or 3 is visible and 2 occluded. The optional sixth column is ours
(the synthetic generator knows why a point is hidden): a
`labels.OcclusionKind`, 0 for visible points and 1..5 for occluded ones.
Without it, visible points get kind 0 and occluded ones kind 5 (unknown).
A point outside the image is unlabelled (kind 4, truncation); a line with
kind 4 says so on purpose (our generator writes one per keypoint outside the
frame) and must lie outside the image.

A bb line is one car's box, as a detector would give it:

  instance_id, x0, y0, x1, y1

the tight box (x0 < x1, y0 < y1, full-frame pixels) of what is visible of the
car; the builder pads it. gt_true files (ours) hold the exact positions of
the labels in gt/, in the gt format, when those labels carry simulated
annotator noise.

The calibration file (JSON) holds, per camera, the intrinsics `K`, the
world->camera rotation `R` and translation `t` (x_cam = R X + t) and the image
size (width, height); per frame and car instance, the car's object->world
pose (`R`, `t`: X_world = R X_obj + t) and optionally its 3D keypoints
`shape_3d` (K, 3) in the object frame. `SequenceCalibration.object_camera`
composes them into the camera matrix from the car's object frame to pixels.

Hand-labelled data is messy, so the readers never raise on bad data: each bad
line or file is skipped, counted in an `Issues` tally under a reason of
`PARSE_ISSUES` and logged with its file (and line number); the valid data next
to it is kept.
"""

import collections
from collections.abc import Iterable, Mapping
import dataclasses
import json
import math
from typing import NamedTuple

from absl import logging
import cv2
from etils import epath
import numpy as np

from occnet_jax import geometry
from occnet_jax import labels
from occnet_jax.categories import car as car_lib

IMAGE_DIR = 'images_jpg'
GT_DIR = 'gt'
BOX_DIR = 'bb'
TRUE_GT_DIR = 'gt_true'
IMAGE_SUFFIX = '.jpg'
GT_SUFFIX = '.txt'
CALIBRATION_FILE = 'calibration.json'
CALIBRATION_FORMAT_VERSION = 1

# CarFusion labels cars.
CATEGORY = car_lib.CAR
NUM_KEYPOINTS = CATEGORY.num_keypoints
RAW_VISIBLE = (1, 3)
RAW_OCCLUDED = 2

PARSE_ISSUES = {
    'wrong_column_count': 'gt line without 5 or 6 fields',
    'non_numeric': 'gt field not a number, or an id or code not an integer',
    'non_finite': 'gt field NaN or infinite',
    'keypoint_id_out_of_range': 'keypoint id outside 1..14',
    'visibility_out_of_range': 'visibility code outside {1, 2, 3}',
    'invalid_occlusion_kind':
        'occlusion kind outside 0..5, contradicting the visibility, or '
        'truncation (4) inside the image',
    'unused_keypoint_slot': 'Exhaust or Center label, ignored by design',
    'outside_image': 'point outside the image: unlabelled (truncation)',
    'duplicate_keypoint':
        'repeated (instance, keypoint) label; the first one is kept',
    'empty_gt_file': 'gt file without any line',
    'unreadable_gt_file': 'gt file that cannot be read as text',
    'unreadable_image': 'image file that cannot be decoded',
    'bad_file_name': 'file not named <camera>_<frame>',
    'gt_without_image': 'gt file without its image',
    'image_without_gt': 'image without its gt file',
    'malformed_box_line':
        'bb line not "instance_id, x0, y0, x1, y1" with finite numbers, an '
        'integer id, x0 < x1 and y0 < y1',
    'duplicate_box': 'repeated instance in a bb file; the first is kept',
    'unreadable_box_file': 'bb file that cannot be read as text',
}


class Issues:
  """Tally of skipped or substituted data by reason; logs every occurrence.

  Attributes:
    reasons: the known reasons and what each means.
    counts: how often each reason occurred.
  """

  def __init__(self, reasons: Mapping[str, str]):
    self.reasons = dict(reasons)
    self.counts = collections.Counter()

  def report(self, reason: str, where: str, detail: str = '') -> None:
    """Counts one occurrence of `reason` and logs where it happened.

    Args:
      reason: a key of `reasons`.
      where: the file (and line number) or example concerned.
      detail: the offending text or an explanation.
    """
    if reason not in self.reasons:
      raise ValueError(f'Unknown issue reason {reason!r}.')
    self.counts[reason] += 1
    logging.warning('%s: %s%s', where, reason, f': {detail}' if detail else '')

  def summary(self) -> str:
    """One line per reason that occurred, most frequent first."""
    if not self.counts:
      return 'no issues'
    return '\n'.join(
        f'{count:8d}  {reason}: {self.reasons[reason]}'
        for reason, count in self.counts.most_common())


class GtLine(NamedTuple):
  """One keypoint label, as written in a gt file (raw CarFusion codes)."""
  x: float
  y: float
  keypoint_id: int
  instance_id: int
  visibility: int
  occlusion_kind: int | None = None


@dataclasses.dataclass
class InstanceLabels:
  """The labels of one car in one view, in model keypoint order.

  Attributes:
    keypoints: (K, 2) float32 pixel positions, 0 where unlabelled.
    visibility: (K,) int32 `labels.Visibility` codes.
    occlusion_kind: (K,) int32 `labels.OcclusionKind` codes.
  """
  keypoints: np.ndarray
  visibility: np.ndarray
  occlusion_kind: np.ndarray

  @classmethod
  def unlabelled(cls) -> 'InstanceLabels':
    return cls(
        keypoints=np.zeros((NUM_KEYPOINTS, 2), np.float32),
        visibility=np.full(NUM_KEYPOINTS, labels.Visibility.UNLABELLED,
                           np.int32),
        occlusion_kind=np.full(NUM_KEYPOINTS, labels.OcclusionKind.UNKNOWN,
                               np.int32))


def format_gt_line(line: GtLine) -> str:
  """The text of one gt line (no newline); floats keep full precision."""
  fields = [repr(float(line.x)), repr(float(line.y)), str(line.keypoint_id),
            str(line.instance_id), str(line.visibility)]
  if line.occlusion_kind is not None:
    fields.append(str(line.occlusion_kind))
  return ', '.join(fields)


def instance_gt_lines(instance_id: int, points: np.ndarray,
                      visibility: np.ndarray,
                      occlusion_kind: np.ndarray | None = None
                      ) -> list[GtLine]:
  """The gt lines of one car in one view, from model-order arrays.

  Args:
    instance_id: the car's id within its frame.
    points: (K, 2) pixel positions.
    visibility: (K,) `labels.Visibility` codes; unlabelled points are not
      written, except truncated ones.
    occlusion_kind: optional (K,) `labels.OcclusionKind` codes, written as
      the sixth column. Unlabelled points of kind 4 (truncation) are written
      as occluded lines of kind 4; their positions must lie outside the
      image.

  Returns:
    One `GtLine` per labelled or truncated keypoint, in model keypoint order.
  """
  lines = []
  for k, slot in enumerate(CATEGORY.keypoint_to_raw_slot):
    truncated = (occlusion_kind is not None and
                 occlusion_kind[k] == labels.OcclusionKind.TRUNCATION)
    if visibility[k] == labels.Visibility.UNLABELLED and not truncated:
      continue
    visible = visibility[k] == labels.Visibility.VISIBLE
    raw_visibility = RAW_VISIBLE[0] if visible else RAW_OCCLUDED
    kind = None if occlusion_kind is None else int(occlusion_kind[k])
    lines.append(GtLine(float(points[k, 0]), float(points[k, 1]), slot + 1,
                        int(instance_id), raw_visibility, kind))
  return lines


def _split_fields(text: str) -> list[str]:
  # The release writes ', '-separated fields; some tools write whitespace.
  if ',' in text:
    return [field.strip() for field in text.split(',')]
  return text.split()


def _check_line(text: str) -> tuple[GtLine | None, str | None]:
  """Parses one non-blank line; returns (line, None) or (None, reason)."""
  fields = _split_fields(text)
  if len(fields) not in (5, 6):
    return None, 'wrong_column_count'
  try:
    values = [float(field) for field in fields]
  except ValueError:
    return None, 'non_numeric'
  if not all(math.isfinite(value) for value in values):
    return None, 'non_finite'
  if not all(value.is_integer() for value in values[2:]):
    return None, 'non_numeric'
  x, y = values[:2]
  keypoint_id, instance_id, visibility, *kind = (int(v) for v in values[2:])
  if not 1 <= keypoint_id <= len(CATEGORY.raw_slot_to_keypoint):
    return None, 'keypoint_id_out_of_range'
  if visibility not in RAW_VISIBLE and visibility != RAW_OCCLUDED:
    return None, 'visibility_out_of_range'
  occlusion_kind = kind[0] if kind else None
  if occlusion_kind is not None:
    visible = visibility in RAW_VISIBLE
    valid_kinds = ({labels.OcclusionKind.VISIBLE} if visible else
                   set(labels.OcclusionKind) - {labels.OcclusionKind.VISIBLE})
    if occlusion_kind not in valid_kinds:
      return None, 'invalid_occlusion_kind'
  return GtLine(x, y, keypoint_id, instance_id, visibility,
                occlusion_kind), None


def parse_gt_lines(lines: Iterable[str], *, image_size: tuple[int, int],
                   source: str, issues: Issues) -> dict[int, InstanceLabels]:
  """Parses the lines of one gt file into per-instance labels.

  Args:
    lines: the file's lines; blank lines are ignored.
    image_size: (width, height) of the view's image; points outside
      [0, width) x [0, height) are unlabelled.
    source: the file name, for the log.
    issues: tally that receives every skipped line.

  Returns:
    Labels by instance id, for instances with at least one labelled point.
  """
  width, height = image_size
  instances = {}
  truncated = set()
  for line_number, text in enumerate(lines, start=1):
    if not text.strip():
      continue
    where = f'{source}:{line_number}'
    line, reason = _check_line(text)
    if reason is None:
      keypoint = CATEGORY.raw_slot_to_keypoint[line.keypoint_id - 1]
      if keypoint < 0:
        reason = 'unused_keypoint_slot'
      elif not (0 <= line.x < width and 0 <= line.y < height):
        truncated.add((line.instance_id, keypoint))
        if line.occlusion_kind == labels.OcclusionKind.TRUNCATION:
          continue  # A truncation label, as meant.
        reason = 'outside_image'
      elif line.occlusion_kind == labels.OcclusionKind.TRUNCATION:
        reason = 'invalid_occlusion_kind'
      elif (line.instance_id in instances and
            instances[line.instance_id].visibility[keypoint]):
        reason = 'duplicate_keypoint'
    if reason is not None:
      issues.report(reason, where, text.strip())
      continue
    instance = instances.setdefault(line.instance_id,
                                    InstanceLabels.unlabelled())
    instance.keypoints[keypoint] = line.x, line.y
    visible = line.visibility in RAW_VISIBLE
    instance.visibility[keypoint] = (
        labels.Visibility.VISIBLE if visible else labels.Visibility.OCCLUDED)
    if line.occlusion_kind is not None:
      instance.occlusion_kind[keypoint] = line.occlusion_kind
    else:
      instance.occlusion_kind[keypoint] = (
          labels.OcclusionKind.VISIBLE if visible
          else labels.OcclusionKind.UNKNOWN)
  for instance_id, keypoint in truncated:
    instance = instances.get(instance_id)
    if instance is not None and not instance.visibility[keypoint]:
      instance.occlusion_kind[keypoint] = labels.OcclusionKind.TRUNCATION
  return instances


def read_gt_file(path: epath.PathLike, *, image_size: tuple[int, int],
                 issues: Issues) -> dict[int, InstanceLabels]:
  """Reads one gt file; see `parse_gt_lines`. Unreadable or empty: {}."""
  path = epath.Path(path)
  try:
    # utf-8-sig: some annotation tools start files with a byte order mark.
    text = path.read_bytes().decode('utf-8-sig')
  except (OSError, UnicodeDecodeError) as error:
    issues.report('unreadable_gt_file', str(path), str(error))
    return {}
  if not text.strip():
    issues.report('empty_gt_file', str(path))
    return {}
  return parse_gt_lines(text.splitlines(), image_size=image_size,
                        source=str(path), issues=issues)


def write_gt_file(path: epath.PathLike, lines: Iterable[GtLine]) -> None:
  """Writes gt lines to `path`, creating its directory.

  Args:
    path: the gt file.
    lines: its labels. Points may lie outside the image (truncation).

  Raises:
    ValueError: a line that `parse_gt_lines` would reject for another reason.
  """
  texts = [format_gt_line(line) for line in lines]
  for text in texts:
    _, reason = _check_line(text)
    if reason is not None:
      raise ValueError(f'{path}: {reason}: {text}')
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(''.join(text + '\n' for text in texts))


def read_image(path: epath.PathLike, issues: Issues) -> np.ndarray | None:
  """Decodes an image file to (H, W, 3) uint8 RGB; None when it cannot."""
  path = epath.Path(path)
  try:
    data = np.frombuffer(path.read_bytes(), np.uint8)
  except OSError as error:
    issues.report('unreadable_image', str(path), str(error))
    return None
  image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
  if image is None:
    issues.report('unreadable_image', str(path), 'not a decodable image')
    return None
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def format_box_line(instance_id: int, box: np.ndarray) -> str:
  """The text of one bb line (no newline); floats keep full precision."""
  return ', '.join([str(int(instance_id))] +
                   [repr(float(value)) for value in box])


def _check_box_line(text: str) -> tuple[int, np.ndarray] | None:
  """(instance id, (4,) box) of a bb line, or None when malformed."""
  fields = _split_fields(text)
  if len(fields) != 5:
    return None
  try:
    values = [float(field) for field in fields]
  except ValueError:
    return None
  box = np.array(values[1:], np.float32)
  if not (all(math.isfinite(value) for value in values) and
          values[0].is_integer() and box[0] < box[2] and box[1] < box[3]):
    return None
  return int(values[0]), box


def parse_box_lines(lines: Iterable[str], *, source: str,
                    issues: Issues) -> dict[int, np.ndarray]:
  """Parses the lines of one bb file: (4,) tight boxes by instance id.

  Args:
    lines: the file's lines; blank lines are ignored.
    source: the file name, for the log.
    issues: tally that receives every skipped line.

  Returns:
    The boxes (x0, y0, x1, y1), float32, by instance id.
  """
  boxes = {}
  for line_number, text in enumerate(lines, start=1):
    if not text.strip():
      continue
    parsed = _check_box_line(text)
    where = f'{source}:{line_number}'
    if parsed is None:
      issues.report('malformed_box_line', where, text.strip())
    elif parsed[0] in boxes:
      issues.report('duplicate_box', where, text.strip())
    else:
      boxes[parsed[0]] = parsed[1]
  return boxes


def read_box_file(path: epath.PathLike,
                  issues: Issues) -> dict[int, np.ndarray]:
  """Reads one bb file; see `parse_box_lines`. Unreadable: {}."""
  path = epath.Path(path)
  try:
    text = path.read_bytes().decode('utf-8-sig')
  except (OSError, UnicodeDecodeError) as error:
    issues.report('unreadable_box_file', str(path), str(error))
    return {}
  return parse_box_lines(text.splitlines(), source=str(path), issues=issues)


def view_paths(sequence_dir: epath.PathLike, camera: str,
               frame: str) -> tuple[epath.Path, epath.Path]:
  """(gt path, image path) of one view in the layout."""
  sequence_dir = epath.Path(sequence_dir)
  name = f'{camera}_{frame}'
  return (sequence_dir / GT_DIR / (name + GT_SUFFIX),
          sequence_dir / IMAGE_DIR / (name + IMAGE_SUFFIX))


def side_paths(sequence_dir: epath.PathLike, camera: str,
               frame: str) -> tuple[epath.Path, epath.Path]:
  """(bb path, gt_true path) of one view in the layout; both optional."""
  sequence_dir = epath.Path(sequence_dir)
  name = f'{camera}_{frame}{GT_SUFFIX}'
  return sequence_dir / BOX_DIR / name, sequence_dir / TRUE_GT_DIR / name


def write_view(sequence_dir: epath.PathLike, camera: str, frame: str,
               image: np.ndarray, lines: Iterable[GtLine], *,
               boxes: Mapping[int, np.ndarray] | None = None,
               true_lines: Iterable[GtLine] | None = None) -> None:
  """Writes one view's RGB image (JPEG), gt and optional side files.

  Args:
    sequence_dir: the sequence's directory, created if needed.
    camera: camera name (no underscore).
    frame: frame name.
    image: (H, W, 3) uint8 RGB image.
    lines: the view's keypoint labels.
    boxes: optional tight (4,) boxes by instance id, for the bb file.
    true_lines: optional exact positions of `lines`, for the gt_true file.
  """
  if '_' in camera:
    raise ValueError(f'Camera names cannot contain "_": {camera!r}.')
  gt_path, image_path = view_paths(sequence_dir, camera, frame)
  box_path, true_gt_path = side_paths(sequence_dir, camera, frame)
  write_gt_file(gt_path, lines)
  if true_lines is not None:
    write_gt_file(true_gt_path, true_lines)
  if boxes is not None:
    texts = [format_box_line(instance, box) for instance, box in
             sorted(boxes.items())]
    if any(_check_box_line(text) is None for text in texts):
      raise ValueError(f'{box_path}: a box needs x0 < x1, y0 < y1: {boxes}')
    box_path.parent.mkdir(parents=True, exist_ok=True)
    box_path.write_text(''.join(text + '\n' for text in texts))
  image_path.parent.mkdir(parents=True, exist_ok=True)
  ok, encoded = cv2.imencode(IMAGE_SUFFIX,
                             cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  if not ok:
    raise ValueError(f'OpenCV could not encode the image for {image_path}.')
  image_path.write_bytes(encoded.tobytes())


@dataclasses.dataclass(frozen=True)
class ViewFiles:
  """The files of one view: a camera's image at a frame and its labels."""
  camera: str
  frame: str
  gt_path: epath.Path
  image_path: epath.Path


def _files_by_view(directory: epath.Path, suffix: str,
                   issues: Issues) -> dict[tuple[str, str], epath.Path]:
  if not directory.is_dir():
    return {}
  files = {}
  for path in sorted(directory.iterdir()):
    if path.suffix != suffix:
      continue
    camera, separator, frame = path.stem.partition('_')
    if not (camera and separator and frame):
      issues.report('bad_file_name', str(path))
      continue
    files[camera, frame] = path
  return files


def list_views(sequence_dir: epath.PathLike,
               issues: Issues) -> list[ViewFiles]:
  """The views of a sequence that have both an image and a gt file.

  Args:
    sequence_dir: the sequence's directory.
    issues: tally that receives files without their partner.

  Returns:
    The views sorted by (frame, camera).
  """
  sequence_dir = epath.Path(sequence_dir)
  gt_files = _files_by_view(sequence_dir / GT_DIR, GT_SUFFIX, issues)
  images = _files_by_view(sequence_dir / IMAGE_DIR, IMAGE_SUFFIX, issues)
  for view in sorted(gt_files.keys() - images.keys()):
    issues.report('gt_without_image', str(gt_files[view]))
  for view in sorted(images.keys() - gt_files.keys()):
    issues.report('image_without_gt', str(images[view]))
  return [
      ViewFiles(camera, frame, gt_files[camera, frame], images[camera, frame])
      for camera, frame in sorted(gt_files.keys() & images.keys(),
                                  key=lambda view: (view[1], view[0]))
  ]


class CalibrationError(ValueError):
  """A calibration file that cannot be read or is inconsistent."""


@dataclasses.dataclass(frozen=True)
class CameraCalibration:
  """One camera of a sequence.

  Attributes:
    intrinsics: (3, 3) K.
    rotation: (3, 3) world->camera rotation R (x_cam = R X + t).
    translation: (3,) world->camera translation t.
    image_size: (width, height) in pixels.
  """
  intrinsics: np.ndarray
  rotation: np.ndarray
  translation: np.ndarray
  image_size: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class ObjectPose:
  """One car at one frame.

  Attributes:
    rotation: (3, 3) object->world rotation (X_world = R X_obj + t).
    translation: (3,) object->world translation.
    shape_3d: optional (K, 3) 3D keypoints in the object frame.
  """
  rotation: np.ndarray
  translation: np.ndarray
  shape_3d: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class SequenceCalibration:
  """Cameras and car poses of one sequence.

  Attributes:
    cameras: calibration by camera name.
    poses: car poses by frame name, then by instance id.
  """
  cameras: Mapping[str, CameraCalibration]
  poses: Mapping[str, Mapping[int, ObjectPose]]

  def object_camera(self, camera: str, frame: str,
                    instance_id: int) -> np.ndarray | None:
    """(3, 4) camera matrix from the car's object frame to pixels, or None.

    Args:
      camera: camera name.
      frame: frame name.
      instance_id: the car's id within the frame.

    Returns:
      K [R_c R_o | R_c t_o + t_c], or None when the camera or the car's pose
      at that frame is not calibrated.
    """
    calibration = self.cameras.get(camera)
    pose = self.poses.get(frame, {}).get(instance_id)
    if calibration is None or pose is None:
      return None
    rotation = calibration.rotation @ pose.rotation
    translation = (calibration.rotation @ pose.translation +
                   calibration.translation)
    return np.asarray(geometry.projection_matrix(
        calibration.intrinsics, rotation, translation), np.float64)


def _array(value, shape: tuple[int, ...], what: str) -> np.ndarray:
  try:
    array = np.asarray(value, np.float64)
  except (TypeError, ValueError) as error:
    raise CalibrationError(f'{what}: not numeric ({error}).') from None
  if array.shape != shape or not np.all(np.isfinite(array)):
    raise CalibrationError(f'{what}: need finite values of shape {shape}, '
                           f'got {array.shape}.')
  return array


def _rotation(value, what: str) -> np.ndarray:
  rotation = _array(value, (3, 3), what)
  if (not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5) or
      np.linalg.det(rotation) < 0):
    raise CalibrationError(f'{what}: not a rotation matrix.')
  return rotation


def _image_size(value, what: str) -> tuple[int, int]:
  size = _array(value, (2,), what)
  if not np.all(size == np.round(size)) or np.any(size <= 0):
    raise CalibrationError(f'{what}: need two positive integers.')
  return int(size[0]), int(size[1])


def _instance_id(key: str) -> int:
  try:
    return int(key)
  except ValueError:
    raise CalibrationError(f'Instance id {key!r} is not an integer.') from None


def calibration_from_json(data) -> SequenceCalibration:
  """Validates decoded calibration JSON; raises `CalibrationError`."""
  if not isinstance(data, dict) or data.get(
      'version') != CALIBRATION_FORMAT_VERSION:
    raise CalibrationError(
        f'Need a JSON object with "version": {CALIBRATION_FORMAT_VERSION}.')
  try:
    cameras = {
        str(name): CameraCalibration(
            intrinsics=_array(camera['K'], (3, 3), f'camera {name} K'),
            rotation=_rotation(camera['R'], f'camera {name} R'),
            translation=_array(camera['t'], (3,), f'camera {name} t'),
            image_size=_image_size(camera['image_size'],
                                   f'camera {name} image_size'))
        for name, camera in data['cameras'].items()
    }
    poses = {
        str(frame): {
            _instance_id(instance): ObjectPose(
                rotation=_rotation(pose['R'],
                                   f'frame {frame} car {instance} R'),
                translation=_array(pose['t'], (3,),
                                   f'frame {frame} car {instance} t'),
                shape_3d=None if pose.get('shape_3d') is None else _array(
                    pose['shape_3d'], (NUM_KEYPOINTS, 3),
                    f'frame {frame} car {instance} shape_3d'))
            for instance, pose in instances.items()
        } for frame, instances in data['frames'].items()
    }
  except (KeyError, TypeError, AttributeError) as error:
    raise CalibrationError(f'Malformed calibration: {error!r}.') from None
  return SequenceCalibration(cameras=cameras, poses=poses)


def calibration_to_json(calibration: SequenceCalibration) -> dict:
  """The JSON object of a calibration (inverse of `calibration_from_json`)."""

  def pose_json(pose: ObjectPose) -> dict:
    entry = {'R': pose.rotation.tolist(), 't': pose.translation.tolist()}
    if pose.shape_3d is not None:
      entry['shape_3d'] = np.asarray(pose.shape_3d).tolist()
    return entry

  return {
      'version': CALIBRATION_FORMAT_VERSION,
      'cameras': {
          name: {
              'K': np.asarray(camera.intrinsics).tolist(),
              'R': np.asarray(camera.rotation).tolist(),
              't': np.asarray(camera.translation).tolist(),
              'image_size': [int(size) for size in camera.image_size],
          } for name, camera in calibration.cameras.items()
      },
      'frames': {
          frame: {str(instance): pose_json(pose)
                  for instance, pose in instances.items()}
          for frame, instances in calibration.poses.items()
      },
  }


def write_calibration(sequence_dir: epath.PathLike,
                      calibration: SequenceCalibration) -> None:
  """Validates and writes `<sequence_dir>/calibration.json`."""
  data = calibration_to_json(calibration)
  calibration_from_json(data)
  path = epath.Path(sequence_dir) / CALIBRATION_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(data, indent=1))


def read_calibration(sequence_dir: epath.PathLike) -> SequenceCalibration:
  """Reads `<sequence_dir>/calibration.json`.

  Args:
    sequence_dir: the sequence's directory.

  Returns:
    The sequence's calibration.

  Raises:
    FileNotFoundError: the sequence has no calibration file.
    CalibrationError: the file is unreadable or malformed.
  """
  path = epath.Path(sequence_dir) / CALIBRATION_FILE
  if not path.exists():
    raise FileNotFoundError(f'No calibration file {path}.')
  try:
    data = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
    raise CalibrationError(f'{path}: {error}') from None
  try:
    return calibration_from_json(data)
  except CalibrationError as error:
    raise CalibrationError(f'{path}: {error}') from None
