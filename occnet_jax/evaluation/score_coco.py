"""PCK for anyone's predictions: a COCO keypoint results file on a split.

A built split (CarFusion or Car-render) is a list of views, every view of
every car in the order evaluation reads them (`split_views`); view n has
COCO image id n + 1, as `data_prep.export_coco` writes it. A results file
(`evaluation.coco_results`) holds keypoints for those ids, in the exported
images' pixels (the view's crop, its box's edges on the crop's edges:
`geometry.crop_transform`) or, with `coordinates='frame'`, in full-frame
pixels. Its keypoints are mapped onto the category by a keypoint layout
(`categories.coco_layouts`), and scored by `evaluate.compute_metrics`, the
code of the project's own evaluation: the same metric keys
(`pck.<method>.<subset>.<alpha>` with intervals over cars, `count.*`,
`multiview.*`) under the method name given, and
`occlusion_auc.<method>` when the file's third values say something (not
all equal): confidences, or COCO visibility flags, rank the keypoints.

A view with several results is scored by its highest-scoring one; a view
without any, a keypoint the layout lacks and one flagged v = 0 (in a file
of COCO visibility flags) count as wrong (confidence 0).
"""

from collections.abc import Mapping, Sequence
import re
from typing import Any

import numpy as np

from occnet_jax import categories
from occnet_jax import errors
from occnet_jax import geometry
from occnet_jax import input_pipeline
from occnet_jax import keypoints as keypoints_lib
from occnet_jax.categories import coco_layouts
from occnet_jax.evaluation import bootstrap
from occnet_jax.evaluation import coco_results
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import outputs

COORDINATES = ('image', 'frame')
# What evaluation reads of a view, besides its car id.
_VIEW_FIELDS = ('keypoints', 'true_keypoints', 'visibility', 'occlusion_kind',
                'boxes', 'cameras', 'camera_error', 'image_size')
_METHOD_NAME = re.compile(r'[A-Za-z0-9_-]+')


def split_views(source: Sequence[Mapping[str, Any]],
                max_cars: int = 0) -> dict[str, np.ndarray]:
  """Every view of every car of a split, in evaluation's order.

  Args:
    source: random-access records of the split.
    max_cars: the first this many cars (0 = all), as `eval.max_instances`.

  Returns:
    Per view (M views): the record fields evaluation reads (`keypoints`,
    `true_keypoints`, `visibility`, `occlusion_kind`, `boxes`, `cameras`,
    `camera_error`, `image_size`), `car_id`, `record` (the car's index),
    `view` (the view's index in its record), `image_id` (1..M) and
    `crop_size`, the side of the records' crops.
  """
  count = len(source) if max_cars <= 0 else min(len(source), max_cars)
  fields = {name: [] for name in _VIEW_FIELDS + ('car_id', 'record',
                                                   'view')}
  crop_size = 0
  for index in range(count):
    record = source[index]
    car_id = record['car_id']
    car_id = car_id.decode() if isinstance(car_id, bytes) else str(car_id)
    num_views = len(record['boxes'])
    crop_size = int(np.asarray(record['crops']).shape[1])
    for name in _VIEW_FIELDS:
      fields[name].append(np.asarray(record[name]))
    fields['car_id'] += [car_id] * num_views
    fields['record'] += [index] * num_views
    fields['view'] += list(range(num_views))
  if not fields['car_id']:
    raise errors.UserError('The split is empty.')
  views = {name: np.concatenate(fields[name]) for name in _VIEW_FIELDS}
  for name in ('car_id', 'record', 'view'):
    views[name] = np.asarray(fields[name])
  views['image_id'] = np.arange(1, len(views['car_id']) + 1)
  views['crop_size'] = crop_size
  return views


def frame_to_image(points: np.ndarray, boxes: np.ndarray,
                   crop_size: int) -> np.ndarray:
  """(..., K, 2) full-frame pixels -> the exported crop's pixels."""
  transform = np.asarray(geometry.crop_transform(
      np.asarray(boxes, np.float64), crop_size), np.float64)
  return (np.einsum('...ij,...kj->...ki', transform[..., :2, :2], points)
          + transform[..., None, :2, 2])


def image_to_frame(points: np.ndarray, boxes: np.ndarray,
                   crop_size: int) -> np.ndarray:
  """(..., K, 2) the exported crop's pixels -> full-frame pixels."""
  boxes = np.asarray(boxes, np.float64)
  scale = (boxes[..., 2:] - boxes[..., :2]) / crop_size
  return boxes[..., None, :2] + np.asarray(points, np.float64) * scale[
      ..., None, :]


def check_method_name(method: str) -> str:
  """The method name, if it can be a metric key's field.

  Raises:
    errors.UserError: empty, or with characters other than letters,
      digits, '_' and '-' (a '.' would split the key).
  """
  if not _METHOD_NAME.fullmatch(method or ''):
    raise errors.UserError(
        f'The method name {method!r} must be letters, digits, _ or -.')
  return method


def view_predictions(entries: Sequence[Mapping[str, Any]],
                     views: Mapping[str, np.ndarray],
                     layout: coco_layouts.KeypointLayout,
                     category: keypoints_lib.Category, where: str, *,
                     coordinates: str = 'image',
                     ) -> tuple[np.ndarray, np.ndarray, bool, int]:
  """Each view's keypoints and confidences from a results file.

  Args:
    entries: checked COCO results.
    views: `split_views`.
    layout: the results' keypoint layout.
    category: the split's category.
    where: the file, for messages.
    coordinates: 'image' (the exported crops' pixels) or 'frame'.

  Returns:
    ((M, K, 2) full-frame pixels, NaN where a view has no result, the
    layout no keypoint or a COCO visibility flag is 0; (M, K) confidences; whether the confidences say
    something (not all equal in the file); the number of results whose
    image id is no view's).
  """
  if coordinates not in COORDINATES:
    raise ValueError(f'coordinates must be one of {COORDINATES}.')
  num_views, num_keypoints = views['visibility'].shape
  points = np.full((num_views, num_keypoints, 2), np.nan)
  confidence = np.zeros((num_views, num_keypoints))
  if not entries:
    return points, confidence, False, 0
  third = coco_results.triplets(entries, where)[..., 2]
  flags = coco_results.are_flags(third)
  informative = bool(np.ptp(third) > 0)
  view_of_id = {int(image_id): index
                for index, image_id in enumerate(views['image_id'])}
  best = {}
  for entry in entries:
    index = view_of_id.get(entry['image_id'])
    if index is not None and (index not in best or entry.get('score', 0.0)
                              > best[index].get('score', 0.0)):
      best[index] = entry
  unmatched = sum(entry['image_id'] not in view_of_id for entry in entries)
  if best:
    indices = np.asarray(sorted(best))
    chosen = [best[index] for index in indices]
    mapped, _ = coco_results.detector_keypoints(chosen, layout, category,
                                                where, flags=flags)
    present = np.zeros((len(indices), num_keypoints), bool)
    for target in layout.to_category.values():
      present[:, category.keypoint_names.index(target)] = True
    if flags:  # COCO's v = 0: not labelled, no position.
      present &= coco_layouts.map_keypoints(
          coco_results.triplets(chosen, where), layout,
          category)[..., 2] != coco_results.NOT_LABELLED
    xy = mapped[..., :2].astype(np.float64)
    if coordinates == 'image':
      xy = image_to_frame(xy, views['boxes'][indices], views['crop_size'])
    points[indices] = np.where(present[..., None], xy, np.nan)
    confidence[indices] = mapped[..., 2]
  return points, confidence, informative, unmatched


def score_results(entries: Sequence[Mapping[str, Any]],
                  views: Mapping[str, np.ndarray], method: str, *,
                  layout: coco_layouts.KeypointLayout,
                  category: keypoints_lib.Category,
                  alphas: Sequence[float], where: str = 'results',
                  coordinates: str = 'image',
                  num_resamples: int = bootstrap.NUM_RESAMPLES,
                  seed: int = 0) -> dict[str, Any]:
  """The metrics of one method's COCO results on a split.

  Args:
    entries: checked COCO results (`coco_results.read_results`).
    views: `split_views` of the split.
    method: the name its figures are written under.
    layout: the results' keypoint layout.
    category: the split's category.
    alphas: PCK thresholds.
    where: the file, for messages.
    coordinates: see `view_predictions`.
    num_resamples: bootstrap resamples of the cars.
    seed: the resamples' seed (evaluation's: 0).

  Returns:
    `evaluate.compute_metrics` of the method (module docstring), with
    `num_results` (entries read) and `unmatched_results` (entries whose
    image id is no view's).
  """
  check_method_name(method)
  points, confidence, informative, unmatched = view_predictions(
      entries, views, layout, category, where, coordinates=coordinates)
  predictions = {name: views[name] for name in _VIEW_FIELDS + ('car_id',)}
  predictions[method] = points
  if informative:
    predictions[f'occlusion.{method}'] = -confidence
  results = evaluate.compute_metrics(predictions, alphas, (),
                                     num_resamples=num_resamples, seed=seed,
                                     methods=(method,))
  results['num_results'] = len(entries)
  results['unmatched_results'] = int(unmatched)
  return results


def score_file(results_path: str, dataset: str, split: str, data_dir: str,
               method: str, output_dir: str, *, alphas: Sequence[float],
               keypoint_layout: str = 'occnet_car_12',
               coordinates: str = 'image', max_cars: int = 0,
               ) -> dict[str, Any]:
  """Scores a results file on a built split into `output_dir` (`outputs.write_metrics`).

  Args:
    results_path: the COCO keypoint results file.
    dataset: the TFDS name with its config ('car_render/small').
    split: the split ('test').
    data_dir: the TFDS data dir holding it.
    method: the name its figures are written under.
    output_dir: where the metrics file goes.
    alphas: PCK thresholds.
    keypoint_layout: the results' layout (`coco_layouts.LAYOUTS`).
    coordinates: see `view_predictions`.
    max_cars: the first this many cars of the split (0 = all).

  Returns:
    The metrics written (`score_results`).

  Raises:
    errors.UserError: a bad method name, layout, file or split.
  """
  check_method_name(method)
  layout = coco_layouts.get_layout(keypoint_layout)
  category = categories.get_category(layout.category)
  entries = coco_results.read_results(results_path)
  views = split_views(input_pipeline.open_split(dataset, split, data_dir),
                      max_cars)
  if views['visibility'].shape[1] != category.num_keypoints:
    raise errors.UserError(
        f'{dataset} has {views["visibility"].shape[1]} keypoints, the '
        f'{layout.name} layout maps onto the {category.num_keypoints} of '
        f'{category.name!r}.')
  results = score_results(entries, views, method, layout=layout,
                          category=category, alphas=alphas,
                          where=results_path, coordinates=coordinates)
  outputs.write_metrics(output_dir, results)
  return results


def format_summary(results: Mapping[str, Any], method: str) -> str:
  """PCK@0.1 on all, visible and occluded keypoints, and the AUC."""

  def figure(key):
    value = results.get(key)
    return 'n/a' if value is None else f'{100 * value:.1f}'

  auc = results.get(metric_keys.occlusion_auc(method))
  return (f'{method}: {results["num_instances"]} views of '
          f'{results["num_cars"]} cars, {results["num_results"]} results '
          f'({results["unmatched_results"]} of no view); PCK@0.1 (%) '
          + ', '.join(
              f'{subset} {figure(metric_keys.pck(method, subset, 0.1))}'
              for subset in ('all', 'visible', 'occluded'))
          + ('' if auc is None else f'; occlusion AUC {auc:.3f}'))
