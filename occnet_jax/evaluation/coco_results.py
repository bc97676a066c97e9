"""COCO keypoint results files: read, checked, mapped onto a category.

A results file is what COCO-speaking detectors (MMPose, Detectron2,
OpenPifPaf) write: a JSON list of objects, each

    {"image_id": int, "category_id": int,
     "keypoints": [x1, y1, v1, ..., xK', yK', vK'], "score": float,
     "bbox": [x, y, width, height]}   # bbox optional

in pixels. The third value of a triplet is read as a confidence in [0, 1]
(what detectors write), except in a file whose third values are all 0, 1 or
2 with some 2: those are COCO visibility flags (2 visible -> confidence 1;
1 labelled but not visible and 0 not labelled -> confidence 0).
`categories.coco_layouts` maps the K' keypoints onto the category's K.
Every mistake raises `CocoInputError` naming the file and the entry.
"""

from collections.abc import Mapping, Sequence
import json
from typing import Any

from etils import epath
import numpy as np

from occnet_jax import cropping
from occnet_jax import errors
from occnet_jax import keypoints as keypoints_lib
from occnet_jax.categories import coco_layouts

# COCO visibility flags.
NOT_LABELLED, LABELLED_HIDDEN, LABELLED_VISIBLE = 0, 1, 2


class CocoInputError(errors.UserError):
  """A COCO file that cannot be used; the message names file and entry."""


def _number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_results(entries: Any, where: str) -> list[dict[str, Any]]:
  """The entries of a results file, each checked.

  Args:
    entries: the parsed JSON.
    where: the file, for messages.

  Returns:
    The entries (a list of dicts with an int `image_id` and a `keypoints`
    list of 3 K' numbers; `bbox`, if any, 4 numbers with width, height >=
    0; `score`, if any, a number).

  Raises:
    CocoInputError: naming the first bad entry.
  """
  if not isinstance(entries, list):
    raise CocoInputError(f'{where}: a COCO results file is a JSON list of '
                         'objects.')
  for index, entry in enumerate(entries):
    problem = None
    if not isinstance(entry, dict):
      problem = 'is not an object'
    elif not isinstance(entry.get('image_id'), int) or isinstance(
        entry.get('image_id'), bool):
      problem = 'has no integer "image_id"'
    elif (not isinstance(entry.get('keypoints'), list)
          or not entry['keypoints'] or len(entry['keypoints']) % 3
          or not all(_number(v) for v in entry['keypoints'])):
      problem = 'has no "keypoints" list of [x, y, v] numbers'
    elif 'bbox' in entry and (
        not isinstance(entry['bbox'], list) or len(entry['bbox']) != 4
        or not all(_number(v) for v in entry['bbox'])
        or min(entry['bbox'][2:]) < 0):
      problem = 'has a "bbox" that is not [x, y, width >= 0, height >= 0]'
    elif 'score' in entry and not _number(entry['score']):
      problem = 'has a "score" that is not a number'
    if problem:
      raise CocoInputError(f'{where}: entry {index} {problem}: '
                           f'{json.dumps(entry)[:200]}.')
  return entries


def read_results(path: str) -> list[dict[str, Any]]:
  """`check_results` of a results file.

  Raises:
    CocoInputError: an unreadable file, malformed JSON or a bad entry.
  """
  try:
    entries = json.loads(epath.Path(path).read_text())
  except (OSError, ValueError) as error:
    raise CocoInputError(f'Cannot read the COCO results file {path}: '
                         f'{error}') from None
  return check_results(entries, path)


def triplets(entries: Sequence[Mapping[str, Any]], where: str) -> np.ndarray:
  """(M, K', 3) float64 [x, y, v] of entries of equal K'.

  Raises:
    CocoInputError: entries of different K'.
  """
  counts = {len(entry['keypoints']) // 3 for entry in entries}
  if len(counts) > 1:
    raise CocoInputError(f'{where}: entries hold different numbers of '
                         f'keypoints: {sorted(counts)}.')
  return np.asarray([entry['keypoints'] for entry in entries],
                    np.float64).reshape(len(entries), -1, 3)


def are_flags(third_values: np.ndarray) -> bool:
  """Whether third values are COCO visibility flags (module docstring)."""
  values = np.asarray(third_values)
  return bool(np.isin(values, (0, 1, 2)).all()
              and np.any(values == LABELLED_VISIBLE))


def confidences(third_values: np.ndarray, flags: bool) -> np.ndarray:
  """Confidences in [0, 1] from the third values (module docstring)."""
  values = np.asarray(third_values, np.float64)
  if flags:
    return (values == LABELLED_VISIBLE).astype(np.float64)
  return np.clip(np.nan_to_num(values), 0.0, 1.0)


def entry_box(entry: Mapping[str, Any], points: np.ndarray) -> np.ndarray:
  """A result's box (x0, y0, x1, y1): its `bbox`, else the box rule's.

  Without a `bbox`, the padded box of its keypoints with confidence > 0
  (`cropping.padded_box`, the box rule of CarFusion's visible-hull boxes;
  no zero-confidence position takes part).

  Args:
    entry: a checked entry.
    points: (K, 3) its mapped [x, y, confidence] keypoints.

  Returns:
    (4,) float32 box; NaN when neither exists (no confident keypoint).
  """
  if 'bbox' in entry:
    x, y, width, height = entry['bbox']
    return np.asarray([x, y, x + width, y + height], np.float32)
  confident = points[points[:, 2] > 0, :2]
  if not len(confident):
    return np.full(4, np.nan, np.float32)
  return cropping.padded_box(confident)


def detector_keypoints(entries: Sequence[Mapping[str, Any]],
                       layout: coco_layouts.KeypointLayout,
                       category: keypoints_lib.Category, where: str,
                       flags: bool | None = None,
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Entries' keypoints mapped onto the category, and their boxes.

  Args:
    entries: checked entries (one image's, or any).
    layout: the detector's keypoint layout.
    category: the category the model predicts.
    where: the file, for messages.
    flags: whether the third values are visibility flags (None: decided
      from these entries, `are_flags`).

  Returns:
    ((M, K, 3) float32 [x, y, confidence] in pixels, (M, 4) float32 boxes
    (`entry_box`)).

  Raises:
    CocoInputError: entries whose K' is not the layout's.
  """
  if not entries:
    return (np.zeros((0, category.num_keypoints, 3), np.float32),
            np.zeros((0, 4), np.float32))
  points = triplets(entries, where)
  if points.shape[1] != len(layout.keypoint_names):
    raise CocoInputError(
        f'{where}: {points.shape[1]} keypoints per entry, but the '
        f'{layout.name} layout has {len(layout.keypoint_names)} (choose the '
        f'layout with --keypoint_layout: {", ".join(coco_layouts.LAYOUTS)}).')
  if flags is None:
    flags = are_flags(points[..., 2])
  points[..., 2] = confidences(points[..., 2], flags)
  mapped = coco_layouts.map_keypoints(points, layout, category)
  boxes = np.stack([entry_box(entry, car)
                    for entry, car in zip(entries, mapped)])
  return mapped, boxes.astype(np.float32)


def by_image(entries: Sequence[Mapping[str, Any]]) -> dict[int, list]:
  """The entries grouped by `image_id`, in file order."""
  groups = {}
  for entry in entries:
    groups.setdefault(entry['image_id'], []).append(entry)
  return groups
