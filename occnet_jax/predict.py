"""Prediction on a full image with car boxes from any detector.

Each box is cropped exactly as the datasets crop (`data_prep.records.
extract_crop`), the trained model runs on the crops (or, in keypoints-in
mode, on an external detector's keypoints), and the result is written as

  - `<output>.json`: per car its box, 2D keypoints [x, y, visibility score]
    (pixels; the score is 1 - the 2D-KGNN occlusion score), 3D keypoints in
    the car's object frame and their projection (the 3D-KGNN keypoints,
    pixels), and the 3D-branch camera (focal, quaternion,
    translation in box coordinates, and the equivalent 3x4 pixel camera
    mapping the 3D keypoints to the image);
  - `<output>.coco.json`: COCO keypoint results ([x, y, v] triplets, v = 2
    for predicted visible and 1 for predicted occluded keypoints);
  - `<output>.png`: the image with the skeletons (visible edges green,
    occluded red).

Bad input never raises a traceback at the user: a file that is not an image
raises `PredictionInputError` with a message; boxes that are empty, zero or
entirely outside the image are skipped with a warning (possibly leaving an
empty result).

Boxes JSON: a list whose items are [x0, y0, x1, y1], {"box": [x0, y0, x1,
y1], "score": s} or COCO detections {"bbox": [x, y, width, height], "score":
s}. Keypoints JSON (keypoints-in mode): a list with one entry per box, each
K triplets [x, y, confidence] in pixels (nested or flat, COCO style).
"""

from collections.abc import Sequence
import json
import os
from typing import Any

from absl import logging
import cv2
from etils import epath
import jax
import numpy as np

from data_prep import records
from occnet_jax import boxes as boxes_lib
from occnet_jax import geometry
from occnet_jax import keypoints as keypoints_lib
from occnet_jax import workdir as workdir_lib
from occnet_jax.models import occlusion_net

COCO_CAR_CATEGORY = 3
OCCLUDED_THRESHOLD = 0.5


class PredictionInputError(ValueError):
  """An input file that cannot be used; the message says why."""


def load_image(path: str) -> np.ndarray:
  """An RGB uint8 image, or `PredictionInputError`."""
  image = None
  if epath.Path(path).is_file():
    image = cv2.imdecode(np.frombuffer(epath.Path(path).read_bytes(), np.uint8),
                         cv2.IMREAD_COLOR)
  if image is None:
    raise PredictionInputError(f'{path} is not a readable image file.')
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_json(path: str, what: str) -> Any:
  try:
    return json.loads(epath.Path(path).read_text())
  except (OSError, ValueError) as error:
    raise PredictionInputError(f'Cannot read the {what} file {path}: '
                               f'{error}') from None


def parse_boxes(entries: Any) -> np.ndarray:
  """(M, 4) boxes (x0, y0, x1, y1) from the boxes JSON (module docstring)."""
  if not isinstance(entries, list):
    raise PredictionInputError('The boxes JSON must be a list.')
  parsed = []
  for index, entry in enumerate(entries):
    if isinstance(entry, dict) and 'bbox' in entry:
      x, y, width, height = entry['bbox']
      box = [x, y, x + width, y + height]
    elif isinstance(entry, dict):
      box = entry.get('box')
    else:
      box = entry
    try:
      box = np.asarray(box, np.float64).reshape(4)
    except (TypeError, ValueError):
      raise PredictionInputError(
          f'Box {index} is not four numbers: {entry!r}.') from None
    parsed.append(box)
  return np.asarray(parsed, np.float32).reshape(-1, 4)


def parse_keypoints(entries: Any, num_boxes: int,
                    num_keypoints: int) -> np.ndarray:
  """(M, K, 3) keypoints [x, y, confidence] from the keypoints JSON."""
  try:
    points = np.asarray(entries, np.float64).reshape(num_boxes, num_keypoints,
                                                     3)
  except (TypeError, ValueError):
    raise PredictionInputError(
        f'The keypoints JSON must hold {num_boxes} entries of '
        f'{num_keypoints} [x, y, confidence] triplets.') from None
  return points.astype(np.float32)


def usable_boxes(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
  """(M,) mask of finite, non-empty boxes that overlap the image.

  Args:
    boxes: (M, 4) boxes in pixels.
    image_size: (width, height).

  Returns:
    The mask; a warning names every rejected box.
  """
  width, height = image_size
  usable = []
  for index, box in enumerate(boxes):
    if not np.all(np.isfinite(box)):
      reason = 'is not finite'
    elif box[2] - box[0] < 1 or box[3] - box[1] < 1:
      reason = 'is empty (less than a pixel wide or high)'
    elif box[2] <= 0 or box[3] <= 0 or box[0] >= width or box[1] >= height:
      reason = f'lies outside the {width}x{height} image'
    else:
      reason = None
    if reason:
      logging.warning('Skipping box %d %s: it %s.', index, box.tolist(),
                      reason)
    usable.append(reason is None)
  return np.asarray(usable, bool).reshape(-1)


def pixel_camera(box: np.ndarray, focal: float, quaternion: np.ndarray,
                 translation: np.ndarray, aspect: float) -> np.ndarray:
  """The 3D-branch camera as a 3x4 matrix from the object frame to pixels.

  The branch projects to box coordinates (f X/Z, aspect f Y/Z); the box maps
  [-1, 1]^2 to its pixels, so P = A diag(f, aspect f, 1) [R | t].

  Args:
    box: (4,) box in pixels.
    focal: f in box units.
    quaternion: (4,) rotation (w, x, y, z).
    translation: (3,) t.
    aspect: box width / height.

  Returns:
    (3, 4) camera matrix.
  """
  half = (box[2:] - box[:2]) / 2.0
  centre = (box[2:] + box[:2]) / 2.0
  box_to_pixels = np.array([[half[0], 0.0, centre[0]],
                            [0.0, half[1], centre[1]], [0.0, 0.0, 1.0]])
  intrinsics = box_to_pixels @ np.diag([focal, aspect * focal, 1.0])
  rotation = np.asarray(geometry.quaternion_to_rotation(quaternion))
  return np.asarray(geometry.projection_matrix(intrinsics, rotation,
                                               translation))


class Predictor:
  """A trained workdir's model, ready to run on images."""

  def __init__(self, workdir: str, step: int | None = None):
    """Restores the latest (or the given) complete checkpoint."""
    self.config, self.model, self.variables, _, self.step = (
        workdir_lib.restore_workdir(workdir, step))
    self.category = keypoints_lib.get_category(self.config.category)
    self._apply = jax.jit(
        lambda variables, crops, boxes, points, confidence: self.model.apply(
            variables, crops, boxes, train=False, keypoints=points,
            confidence=confidence))

  def __call__(self, image: np.ndarray, boxes: np.ndarray,
               external_keypoints: np.ndarray | None = None,
               ) -> list[dict[str, Any]]:
    """Predicts every usable box of an image.

    Args:
      image: (H, W, 3) uint8 RGB image.
      boxes: (M, 4) boxes in pixels.
      external_keypoints: optional (M, K, 3) [x, y, confidence] in pixels
        (keypoints-in mode: the heatmap head is skipped).

    Returns:
      One dict per usable box (module docstring), in box order.
    """
    height, width = image.shape[:2]
    keep = usable_boxes(boxes, (width, height))
    if not keep.any():
      return []
    boxes = boxes[keep]
    crop_size = self.config.data.crop_size
    crops = np.stack([records.extract_crop(image, box, crop_size)
                      for box in boxes])
    if external_keypoints is None:
      points = confidence = None
    else:
      external_keypoints = external_keypoints[keep]
      points = boxes_lib.to_box_coordinates(external_keypoints[..., :2],
                                            boxes)
      confidence = external_keypoints[..., 2]
    outputs = jax.device_get(self._apply(self.variables, crops, boxes, points,
                                         confidence))
    keypoints_2d, reprojected = (
        np.asarray(boxes_lib.from_box_coordinates(outputs[key], boxes))
        for key in ('keypoints_2d', 'reprojected'))
    aspect = np.asarray(occlusion_net.box_aspect(boxes))
    cars = []
    for index, box in enumerate(boxes):
      visibility = 1.0 - outputs['occlusion_score'][index]
      cars.append({
          'box': box.tolist(),
          'keypoints_2d': np.concatenate(
              [keypoints_2d[index], visibility[:, None]], -1).tolist(),
          'keypoint_names': list(self.category.keypoint_names),
          'keypoints_3d': outputs['keypoints_3d'][index].tolist(),
          'keypoints_3d_projected': reprojected[index].tolist(),
          'camera': {
              'focal': float(outputs['focal'][index]),
              'quaternion': outputs['quaternion'][index].tolist(),
              'translation': outputs['translation'][index].tolist(),
              'matrix': pixel_camera(
                  box, float(outputs['focal'][index]),
                  outputs['quaternion'][index],
                  outputs['translation'][index], aspect[index]).tolist(),
          },
      })
    return cars


def to_coco_results(cars: Sequence[dict[str, Any]], image_id: int | str,
                    category_id: int = COCO_CAR_CATEGORY,
                    ) -> list[dict[str, Any]]:
  """COCO keypoint results: [x, y, v] triplets, v 2 visible, 1 occluded."""
  results = []
  for car in cars:
    points = np.asarray(car['keypoints_2d'])
    flags = np.where(points[:, 2] >= OCCLUDED_THRESHOLD, 2, 1)
    x0, y0, x1, y1 = car['box']
    results.append({
        'image_id': image_id, 'category_id': category_id,
        'keypoints': np.stack([points[:, 0], points[:, 1], flags],
                              -1).reshape(-1).tolist(),
        'score': float(points[:, 2].mean()),
        'bbox': [x0, y0, x1 - x0, y1 - y0]})
  return results


def draw_overlay(image: np.ndarray, cars: Sequence[dict[str, Any]],
                 category: keypoints_lib.Category) -> np.ndarray:
  """The image with each car's skeleton: visible green, occluded red."""
  overlay = image.copy()
  thickness = max(1, round(max(image.shape[:2]) / 500))
  green, red = (0, 220, 0), (230, 0, 0)
  for car in cars:
    points = np.asarray(car['keypoints_2d'])
    occluded = points[:, 2] < OCCLUDED_THRESHOLD
    x0, y0, x1, y1 = np.round(car['box']).astype(int)
    cv2.rectangle(overlay, (x0, y0), (x1, y1), (255, 255, 0), thickness)
    pixel = np.round(points[:, :2]).astype(int)
    for i, j in category.skeleton:
      colour = red if occluded[i] or occluded[j] else green
      cv2.line(overlay, tuple(pixel[i]), tuple(pixel[j]), colour, thickness,
               cv2.LINE_AA)
    for point, hidden in zip(pixel, occluded):
      cv2.circle(overlay, tuple(point), 2 * thickness,
                 red if hidden else green, -1, cv2.LINE_AA)
  return overlay


def predict_files(workdir: str, image_path: str, boxes_path: str,
                  output: str, keypoints_path: str | None = None,
                  ) -> list[dict[str, Any]]:
  """Runs a workdir's model on an image file and writes the three outputs.

  Args:
    workdir: a training workdir.
    image_path: the image.
    boxes_path: the boxes JSON.
    output: path prefix of `<output>.json`, `.coco.json` and `.png`.
    keypoints_path: optional keypoints JSON (keypoints-in mode).

  Returns:
    The per-car predictions written to `<output>.json`.

  Raises:
    PredictionInputError: for an unreadable image or malformed JSON.
  """
  image = load_image(image_path)
  boxes = parse_boxes(_read_json(boxes_path, 'boxes'))
  predictor = Predictor(workdir)
  external = None
  if keypoints_path:
    external = parse_keypoints(_read_json(keypoints_path, 'keypoints'),
                               len(boxes), predictor.category.num_keypoints)
  cars = predictor(image, boxes, external)
  epath.Path(f'{output}.json').parent.mkdir(parents=True, exist_ok=True)
  image_id = os.path.splitext(os.path.basename(image_path))[0]
  epath.Path(f'{output}.json').write_text(json.dumps(
      {'image': image_path, 'step': predictor.step,
       'keypoints_in': bool(keypoints_path), 'cars': cars}, indent=1))
  epath.Path(f'{output}.coco.json').write_text(
      json.dumps(to_coco_results(cars, image_id)))
  overlay = draw_overlay(image, cars, predictor.category)
  _, png = cv2.imencode('.png', cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
  epath.Path(f'{output}.png').write_bytes(png.tobytes())
  logging.info('%d car(s) -> %s.{json,coco.json,png}', len(cars), output)
  return cars
