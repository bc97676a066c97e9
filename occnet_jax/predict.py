"""Prediction on a full image with car boxes from any detector.

Each box is cropped exactly as the datasets crop (`cropping.extract_crop`),
the trained model runs on the crops (or, in keypoints-in mode, on an
external detector's keypoints), and the result is written as

  - `<output>.json`: per car its box, 2D keypoints [x, y, visibility score]
    (pixels; the score is 1 - the 2D-KGNN occlusion score), 3D keypoints in
    the car's object frame and their projection (the 3D-KGNN keypoints,
    pixels), and the 3D-branch camera (focal, quaternion,
    translation in box coordinates, and the equivalent 3x4 pixel camera
    mapping the 3D keypoints to the image);
  - `<output>.coco.json`: COCO keypoint results ([x, y, v] triplets, v = 2
    for predicted visible and 1 for predicted occluded keypoints; `score`
    the car's occlusion-aware confidence, the mean visibility score of its
    keypoints), with an integer `image_id`;
  - `<output>.coco_images.json`: the COCO `images` entry of that id (`id`,
    `file_name`, `width`, `height`), mapping it back to the image file;
  - `<output>.png`: the image with the detector's boxes and the skeletons
    (`colours.COLOURS`: edges between two predicted-visible keypoints in the
    visible colour, green, others in the occluded colour, red).

A car whose confidence is below the score threshold is left out of all
three.

In keypoints-in mode the keypoints are our own JSON (`KEYPOINTS_FORMAT`) or
a detector's COCO keypoint results (`evaluation.coco_results`), mapped onto
the category by a keypoint layout (`categories.coco_layouts`), their boxes
from the results. `predict_frames` runs a folder, a glob or a video (OpenCV)
with COCO detections or keypoint results keyed by image id (a video's frame
index), writing one COCO results file for all frames; a frame that cannot
be read is skipped, counted and named.

Bad input never raises a traceback at the user: a file that is not an image
or does not decode completely (a truncated JPEG), malformed JSON and
malformed boxes raise `PredictionInputError` naming the file and the entry;
boxes that are empty, have swapped corners or lie entirely outside the
image are skipped with a warning naming them (possibly leaving an empty
result).
"""

from collections.abc import Iterator, Sequence
import dataclasses
import glob
import json
import os
from typing import Any
import zlib

from absl import logging
import cv2
from etils import epath
import jax
from matplotlib import colors as matplotlib_colors
import numpy as np
from PIL import Image
from PIL import ImageOps
import tqdm

from occnet_jax import boxes as boxes_lib
from occnet_jax import categories
from occnet_jax import cropping
from occnet_jax import errors
from occnet_jax import geometry
from occnet_jax import keypoints as keypoints_lib
from occnet_jax import workdir_model
from occnet_jax.categories import coco_layouts
from occnet_jax.evaluation import coco_results
from occnet_jax.evaluation import colours
from occnet_jax.models import occlusion_net

OCCLUDED_THRESHOLD = 0.5
# The input formats, for the command's --help (the README says the same).
BOXES_FORMATS = (
    'a JSON list of car boxes in pixels, each [x0, y0, x1, y1] (corners), '
    '{"box": [x0, y0, x1, y1]} or a COCO detection {"bbox": [x, y, width, '
    'height]} (other keys such as "score" are ignored)')
KEYPOINTS_FORMAT = (
    'a JSON list with one entry per box of K [x, y, confidence] triplets in '
    'pixels, nested or flat (COCO style), or a COCO keypoint results file '
    '(objects with "image_id", "keypoints", optional "bbox"; see '
    '--keypoint_layout)')
# The layout of COCO keypoint results when none is named: this project's.
DEFAULT_LAYOUT = 'occnet_car_12'


class PredictionInputError(errors.UserError):
  """An input file that cannot be used; the message says why."""


def load_image(path: str) -> np.ndarray:
  """The (H, W, 3) uint8 RGB image, EXIF orientation applied.

  Raises:
    PredictionInputError: for a file that is not an image or does not decode
      completely (a truncated file would otherwise give a mostly grey image
      and predictions on it).
  """
  if not epath.Path(path).is_file():
    raise PredictionInputError(f'{path} is not a readable image file.')
  try:
    with epath.Path(path).open('rb') as file, Image.open(file) as image:
      image.load()
      return np.asarray(ImageOps.exif_transpose(image).convert('RGB'))
  except (OSError, SyntaxError, ValueError) as error:
    raise PredictionInputError(
        f'{path} is not a readable image file, or is incomplete: '
        f'{error}.') from None


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
    coco = isinstance(entry, dict) and 'bbox' in entry
    box = (entry['bbox'] if coco else entry.get('box')
           if isinstance(entry, dict) else entry)
    if (not isinstance(box, list) or len(box) != 4 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool)
        for v in box)):
      what = '"bbox" [x, y, width, height]' if coco else '[x0, y0, x1, y1]'
      raise PredictionInputError(
          f'Box {index} is not four numbers {what}: {entry!r}.')
    box = np.asarray(box, np.float64)
    if coco:
      if np.any(box[2:] < 0):
        raise PredictionInputError(
            f'Box {index}: a COCO "bbox" is [x, y, width, height] with '
            f'width, height >= 0: {entry!r}.')
      box[2:] += box[:2]
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


def is_coco_results(entries: Any) -> bool:
  """Whether parsed JSON is a COCO results list (objects with image_id)."""
  return (isinstance(entries, list) and bool(entries) and all(
      isinstance(entry, dict) and 'image_id' in entry for entry in entries))


def coco_keypoints_of_image(entries: Sequence[dict[str, Any]], image_id: int,
                            layout: coco_layouts.KeypointLayout, where: str,
                            ) -> tuple[np.ndarray, np.ndarray]:
  """One image's COCO keypoint results, mapped onto the layout's category.

  Args:
    entries: checked COCO results (`coco_results.check_results`).
    image_id: the image's id; when every entry has one same id, all
      entries are the image's whatever it is.
    layout: the detector's keypoint layout.
    where: the file, for messages.

  Returns:
    ((M, K, 3) [x, y, confidence] pixels, (M, 4) boxes), as
    `coco_results.detector_keypoints`.

  Raises:
    PredictionInputError: when no entry has the image's id.
  """
  groups = coco_results.by_image(entries)
  if len(groups) == 1:
    image_id = next(iter(groups))
  if image_id not in groups:
    raise PredictionInputError(
        f'{where} holds no result of image_id {image_id} (it has '
        f'{sorted(groups)[:10]}...); name the image\'s id with --image_id.')
  return coco_results.detector_keypoints(
      groups[image_id], layout, categories.get_category(layout.category),
      where, flags=coco_results.are_flags(
          coco_results.triplets(entries, where)[..., 2]))


def check_layout(layout: coco_layouts.KeypointLayout,
                 category: keypoints_lib.Category) -> None:
  """Raises PredictionInputError unless the layout maps onto the category."""
  if layout.category != category.name:
    raise PredictionInputError(
        f'The {layout.name} keypoint layout maps onto {layout.category!r}, '
        f'the model predicts {category.name!r}.')


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
    elif box[2] < box[0] or box[3] < box[1]:
      reason = 'has x1 < x0 or y1 < y0 (corners swapped?)'
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
        workdir_model.restore_workdir(workdir, step))
    self.category = categories.get_category(self.config.category)
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
    crops = np.stack([cropping.extract_crop(image, box, crop_size)
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


def coco_image_id(path: str) -> int:
  """An integer COCO image id for an image file.

  The file name's number when it is one (COCO's 000000397133.jpg is
  397133), else the CRC-32 of the file name, the same on every run.

  Args:
    path: the image file.

  Returns:
    The id.
  """
  name = os.path.splitext(os.path.basename(path))[0]
  return int(name) if name.isdigit() else zlib.crc32(name.encode())


def car_score(car: dict[str, Any]) -> float:
  """The occlusion-aware confidence: the mean keypoint visibility score."""
  return float(np.mean(np.asarray(car['keypoints_2d'])[:, 2]))


def to_coco_results(cars: Sequence[dict[str, Any]], image_id: int,
                    category_id: int) -> list[dict[str, Any]]:
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
        'score': car_score(car),
        'bbox': [x0, y0, x1 - x0, y1 - y0]})
  return results


def _rgb255(colour: str) -> tuple[int, int, int]:
  return tuple(round(255 * c) for c in matplotlib_colors.to_rgb(colour))


def draw_overlay(image: np.ndarray, cars: Sequence[dict[str, Any]],
                 category: keypoints_lib.Category) -> np.ndarray:
  """The image with each car's box and skeleton (module docstring)."""
  overlay = image.copy()
  thickness = max(1, round(max(image.shape[:2]) / 500))
  green, red, box_colour = (_rgb255(colours.COLOURS[name]) for name in (
      'visible', 'occluded', 'detector_box'))
  for car in cars:
    points = np.asarray(car['keypoints_2d'])
    occluded = points[:, 2] < OCCLUDED_THRESHOLD
    x0, y0, x1, y1 = np.round(car['box']).astype(int)
    cv2.rectangle(overlay, (x0, y0), (x1, y1), box_colour, thickness)
    pixel = np.round(points[:, :2]).astype(int)
    for i, j in category.skeleton:
      colour = red if occluded[i] or occluded[j] else green
      cv2.line(overlay, tuple(pixel[i]), tuple(pixel[j]), colour, thickness,
               cv2.LINE_AA)
    for point, hidden in zip(pixel, occluded):
      cv2.circle(overlay, tuple(point), 2 * thickness,
                 red if hidden else green, -1, cv2.LINE_AA)
  return overlay


def output_paths(output: str) -> tuple[str, str, str, str]:
  """The files `predict_files` writes: JSON, COCO results, COCO image, PNG."""
  return (f'{output}.json', f'{output}.coco.json',
          f'{output}.coco_images.json', f'{output}.png')


def predict_files(workdir: str, image_path: str, boxes_path: str | None,
                  output: str, keypoints_path: str | None = None, *,
                  step: int | None = None, score_threshold: float = 0.0,
                  image_id: int | None = None,
                  keypoint_layout: str = DEFAULT_LAYOUT,
                  ) -> list[dict[str, Any]]:
  """Runs a workdir's model on an image file and writes `output_paths`.

  Args:
    workdir: a training workdir.
    image_path: the image.
    boxes_path: the boxes JSON (`BOXES_FORMATS`); None with a COCO
      keypoint results file, whose entries give the boxes.
    output: path prefix of the outputs (module docstring).
    keypoints_path: optional keypoints JSON (keypoints-in mode): our own
      (`KEYPOINTS_FORMAT`) or COCO keypoint results, of which the entries of
      this image's id are read (all of them when the file holds one id).
    step: the checkpoint step (None = the latest complete one).
    score_threshold: cars whose `car_score` is below it are left out.
    image_id: the COCO image id (None = `coco_image_id`).
    keypoint_layout: the COCO results' layout (`coco_layouts.LAYOUTS`).

  Returns:
    The per-car predictions written to `<output>.json`.

  Raises:
    PredictionInputError: for an unreadable or incomplete image, malformed
      JSON or malformed boxes; all checked before the model is restored.
  """
  image = load_image(image_path)
  image_id = coco_image_id(image_path) if image_id is None else image_id
  keypoints_json = (_read_json(keypoints_path, 'keypoints')
                    if keypoints_path else None)
  external = boxes = None
  if is_coco_results(keypoints_json):
    layout = coco_layouts.get_layout(keypoint_layout)
    external, boxes = coco_keypoints_of_image(
        coco_results.check_results(keypoints_json, keypoints_path), image_id,
        layout, keypoints_path)
  if boxes_path:
    boxes = parse_boxes(_read_json(boxes_path, 'boxes'))
  elif boxes is None:
    raise PredictionInputError('Give the boxes (--boxes), or COCO keypoint '
                               'results with their boxes (--keypoints).')
  predictor = Predictor(workdir, step)
  if external is not None:
    check_layout(layout, predictor.category)
    if len(external) != len(boxes):
      raise PredictionInputError(
          f'{keypoints_path} holds {len(external)} cars of image {image_id}, '
          f'{boxes_path} {len(boxes)} boxes.')
  elif keypoints_json is not None:
    external = parse_keypoints(keypoints_json, len(boxes),
                               predictor.category.num_keypoints)
  cars = [car for car in predictor(image, boxes, external)
          if car_score(car) >= score_threshold]
  json_path, coco_path, images_path, png_path = (
      epath.Path(path) for path in output_paths(output))
  json_path.parent.mkdir(parents=True, exist_ok=True)
  json_path.write_text(json.dumps(
      {'image': image_path, 'image_id': image_id, 'step': predictor.step,
       'keypoints_in': bool(keypoints_path),
       'score_threshold': score_threshold, 'cars': cars}, indent=1))
  coco_path.write_text(json.dumps(to_coco_results(
      cars, image_id, predictor.category.coco_category_id)))
  height, width = image.shape[:2]
  images_path.write_text(json.dumps(
      [{'id': image_id, 'file_name': os.path.basename(image_path),
        'width': width, 'height': height}]))
  overlay = draw_overlay(image, cars, predictor.category)
  _, png = cv2.imencode('.png', cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
  png_path.write_bytes(png.tobytes())
  return cars


# Folders, globs and videos: many frames, one COCO results file.
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mov', '.mkv', '.m4v', '.webm')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
# Written into the output folder of `predict_frames`.
FRAMES_RESULTS = 'results.coco.json'
FRAMES_IMAGES = 'images.coco.json'
FRAMES_PREDICTIONS = 'predictions.json'
FRAMES_OVERLAYS = 'overlays'


@dataclasses.dataclass(frozen=True)
class Frame:
  """One image of a folder or frame of a video.

  Attributes:
    name: the image file, or 'frame <index>' of a video.
    image_id: its COCO id: `coco_image_id` of a file, a video frame's index.
    image: (H, W, 3) uint8 RGB, or None when it could not be read.
    error: why it could not be read, or None.
  """
  name: str
  image_id: int
  image: np.ndarray | None
  error: str | None = None


def is_video(source: str) -> bool:
  """Whether a source is a video file (by its suffix)."""
  return (os.path.splitext(source)[1].lower() in VIDEO_SUFFIXES
          and os.path.isfile(source))


def image_paths(source: str) -> list[str]:
  """The images of a folder (by suffix) or of a glob pattern, sorted.

  Raises:
    PredictionInputError: when there is none.
  """
  if os.path.isdir(source):
    paths = [os.path.join(source, name) for name in os.listdir(source)
             if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES]
  else:
    paths = [path for path in glob.glob(source) if os.path.isfile(path)]
  if not paths:
    raise PredictionInputError(
        f'{source} is no video ({", ".join(VIDEO_SUFFIXES)}), and names no '
        f'image (a folder of {", ".join(IMAGE_SUFFIXES)} files, or a glob).')
  return sorted(paths)


def count_frames(source: str) -> int | None:
  """How many frames a source holds (a video's container says; or None)."""
  if not is_video(source):
    return len(image_paths(source))
  capture = cv2.VideoCapture(source)
  try:
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
  finally:
    capture.release()
  return total if total > 0 else None


def read_frames(source: str) -> Iterator[Frame]:
  """The frames of a folder, glob or video, in order.

  An image that does not decode completely, or a video frame that its
  container counts but that does not decode (a truncated file), comes with
  its `error` and no image.

  Args:
    source: a folder, a glob pattern or a video file (OpenCV reads it).

  Yields:
    `Frame`s.

  Raises:
    PredictionInputError: a source with no image, or a video OpenCV cannot
      open.
  """
  if not is_video(source):
    for path in image_paths(source):
      try:
        yield Frame(path, coco_image_id(path), load_image(path))
      except PredictionInputError as error:
        yield Frame(path, coco_image_id(path), None, str(error))
    return
  capture = cv2.VideoCapture(source)
  if not capture.isOpened():
    raise PredictionInputError(f'OpenCV cannot open the video {source}.')
  total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
  index = 0
  try:
    while True:
      ok, frame = capture.read()
      if not ok and index >= total:
        return
      yield (Frame(f'frame {index}', index,
                   cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)) if ok else
             Frame(f'frame {index}', index, None,
                   f'frame {index} of the {total} of {source} does not '
                   'decode'))
      index += 1
  finally:
    capture.release()


def _detections_by_image(entries: Any, where: str) -> dict[int, list]:
  """COCO detections (objects with image_id and bbox) grouped by image.

  A whole COCO dataset file is read by its "annotations".
  """
  if isinstance(entries, dict) and 'annotations' in entries:
    entries = entries['annotations']
  if not is_coco_results(entries) or not all(
      isinstance(entry.get('image_id'), int) for entry in entries):
    raise PredictionInputError(
        f'{where}: a detections file for many frames is a COCO list of '
        'objects with an integer "image_id" and a "bbox".')
  return coco_results.by_image(entries)


def _video_writer(path: str, fps: float,
                  size: tuple[int, int]) -> cv2.VideoWriter:
  """MP4 (mp4v) for .mp4, Motion JPEG otherwise."""
  codec = 'mp4v' if path.lower().endswith('.mp4') else 'MJPG'
  epath.Path(path).parent.mkdir(parents=True, exist_ok=True)
  return cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codec), fps, size)


def predict_frames(workdir: str, source: str, output_dir: str, *,
                   boxes_path: str | None = None,
                   keypoints_path: str | None = None,
                   keypoint_layout: str = DEFAULT_LAYOUT,
                   step: int | None = None, score_threshold: float = 0.0,
                   overlays: bool = False, video_output: str | None = None,
                   video_fps: float = 10.0) -> dict[str, Any]:
  """Runs a workdir's model on a folder, glob or video of frames.

  Boxes come from a COCO detections file (`boxes_path`: objects with
  "image_id" and "bbox"), or, in keypoints-in mode, from a COCO keypoint
  results file (`keypoints_path`) with the boxes of its entries; both are
  keyed by `Frame.image_id` (a file's `coco_image_id`, a video frame's
  index). A frame that cannot be read, or whose entries cannot be used, is
  skipped with a warning naming it, counted and listed; the run goes on.

  Writes into `output_dir`: `FRAMES_RESULTS` (COCO keypoint results of
  every frame, `to_coco_results`), `FRAMES_IMAGES` (their COCO `images`),
  `FRAMES_PREDICTIONS` (per frame its cars as `Predictor` gives them, and
  the bad frames), with `overlays` a PNG per frame under `FRAMES_OVERLAYS`,
  and with `video_output` the annotated frames as a video.

  Args:
    workdir: a training workdir.
    source: a folder of images, a glob pattern or a video file.
    output_dir: the output folder.
    boxes_path: COCO detections keyed by image id.
    keypoints_path: COCO keypoint results keyed by image id.
    keypoint_layout: their keypoint layout (`coco_layouts.LAYOUTS`).
    step: the checkpoint step (None = the latest complete one).
    score_threshold: cars whose `car_score` is below it are left out.
    overlays: write an overlay PNG per frame.
    video_output: write the overlays as this video file (.mp4: mp4v, else
      Motion JPEG).
    video_fps: the annotated video's frame rate.

  Returns:
    The summary: `num_frames` read, `num_cars`, `bad_frames` (name and
    why), `paths` written.

  Raises:
    PredictionInputError: neither or both of the boxes and keypoints files,
      an unreadable one, or a source without frames.
  """
  if (boxes_path is None) == (keypoints_path is None):
    raise PredictionInputError(
        'Give the boxes of the frames as COCO detections (--boxes) or COCO '
        'keypoint results with their boxes (--keypoints), one of them.')
  total = count_frames(source)
  layout = coco_layouts.get_layout(keypoint_layout)
  if keypoints_path:
    entries = coco_results.read_results(keypoints_path)
    groups = coco_results.by_image(entries)
    flags = coco_results.are_flags(
        coco_results.triplets(entries, keypoints_path)[..., 2])
  else:
    groups = _detections_by_image(_read_json(boxes_path, 'boxes'),
                                  boxes_path)
  predictor = Predictor(workdir, step)
  check_layout(layout, predictor.category)
  output = epath.Path(output_dir)
  (output / FRAMES_OVERLAYS if overlays else output).mkdir(parents=True,
                                                          exist_ok=True)
  results, images, frames, bad = [], [], [], []
  writer = None
  try:
    for frame in tqdm.tqdm(read_frames(source), total=total, unit='frame',
                           desc='predict', dynamic_ncols=True):
      error = frame.error
      if error is None:
        try:
          if keypoints_path:
            external, boxes = coco_results.detector_keypoints(
                groups.get(frame.image_id, []), layout, predictor.category,
                keypoints_path, flags=flags)
          else:
            external, boxes = None, parse_boxes(groups.get(frame.image_id,
                                                           []))
        except errors.UserError as problem:
          error = f'{frame.name}: {problem}'
      if error is not None:
        logging.warning('Skipping %s: %s', frame.name, error)
        bad.append({'name': frame.name, 'error': error})
        continue
      cars = [car for car in predictor(frame.image, boxes, external)
              if car_score(car) >= score_threshold]
      results += to_coco_results(cars, frame.image_id,
                                 predictor.category.coco_category_id)
      height, width = frame.image.shape[:2]
      stem = (os.path.splitext(os.path.basename(frame.name))[0]
              if not is_video(source) else f'frame_{frame.image_id:06d}')
      images.append({'id': frame.image_id, 'file_name': (
          os.path.basename(frame.name) if not is_video(source) else stem),
                     'width': width, 'height': height})
      frames.append({'name': frame.name, 'image_id': frame.image_id,
                     'cars': cars})
      if overlays or video_output:
        overlay = cv2.cvtColor(draw_overlay(frame.image, cars,
                                            predictor.category),
                               cv2.COLOR_RGB2BGR)
        if overlays:
          cv2.imwrite(str(output / FRAMES_OVERLAYS / f'{stem}.png'), overlay)
        if video_output:
          if writer is None:  # The first frame's size; others resized.
            video_size = (width, height)
            writer = _video_writer(video_output, video_fps, video_size)
          writer.write(cv2.resize(overlay, video_size))
  finally:
    if writer is not None:
      writer.release()
  paths = [str(output / name) for name in (FRAMES_RESULTS, FRAMES_IMAGES,
                                           FRAMES_PREDICTIONS)]
  (output / FRAMES_RESULTS).write_text(json.dumps(results))
  (output / FRAMES_IMAGES).write_text(json.dumps(images))
  summary = {'num_frames': len(frames), 'num_cars': len(results),
             'bad_frames': bad}
  (output / FRAMES_PREDICTIONS).write_text(json.dumps(
      {'source': source, 'step': predictor.step,
       'keypoints_in': bool(keypoints_path),
       'score_threshold': score_threshold, 'frames': frames,
       'bad_frames': bad}, indent=1))
  if overlays:
    paths.append(str(output / FRAMES_OVERLAYS) + os.sep)
  if video_output and writer is not None:
    paths.append(video_output)
  if bad:
    logging.warning('%d of %d frames skipped: %s', len(bad),
                    len(bad) + len(frames),
                    '; '.join(item['name'] for item in bad))
  return summary | {'paths': paths}
