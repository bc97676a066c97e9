"""The dataset record both TFDS builders write, and helpers to fill it.

One example holds one car seen in V views (docs/design.md, "Dataset
record"): a square ROI crop per view, resized from a box around the car, the
box, the keypoint labels and their exact positions, the camera from the car's
object frame to the full frame and the frame's size.

The box rule (docs/design.md, "Boxes"): a box is what a detector could give,
the padded bounding box of what is visible of the car (its rendered pixels,
or its visible keypoints); it never depends on where an occluded keypoint
is. `occnet_jax.cropping` pads it and cuts the crop, as prediction does. All
features are plain tensors (crops zlib compressed, not JPEG), so the
`array_record` files are read back with `tfds.data_source` and numpy,
without TensorFlow.
"""

from collections.abc import Sequence
import dataclasses

import numpy as np
import tensorflow_datasets as tfds

DEFAULT_CROP_SIZE = 64


def features(num_views: int | None, num_keypoints: int,
             crop_size: int = DEFAULT_CROP_SIZE) -> tfds.features.FeaturesDict:
  """The TFDS features of the record.

  Args:
    num_views: V, or None when the number of views varies per example.
    num_keypoints: K.
    crop_size: S.

  Returns:
    The `FeaturesDict` of docs/design.md's record.
  """
  v, k, s = num_views, num_keypoints, crop_size

  def tensor(shape, dtype, doc, **kwargs):
    return tfds.features.Tensor(shape=shape, dtype=dtype, doc=doc, **kwargs)

  return tfds.features.FeaturesDict({
      'car_id': tfds.features.Text(
          doc='model id, or <sequence>/<frame>/<instance>'),
      'crops': tensor((v, s, s, 3), np.uint8,
                      'RGB ROI crop of each view, resized from its box',
                      encoding=tfds.features.Encoding.ZLIB),
      'boxes': tensor((v, 4), np.float32,
                      'box (x0, y0, x1, y1) in full-frame pixels'),
      'keypoints': tensor((v, k, 2), np.float32,
                          'pixel labels, 0 where unlabelled'),
      'true_keypoints': tensor(
          (v, k, 2), np.float32,
          'exact pixel positions where known (synthetic), else the labels; '
          'for evaluation only'),
      'visibility': tensor((v, k), np.int32,
                           '0 unlabelled, 1 visible, 2 occluded'),
      'occlusion_kind': tensor(
          (v, k), np.int32, '0 visible, 1 self, 2 other vehicle, '
          '3 other object, 4 truncation, 5 unknown'),
      'cameras': tensor((v, 3, 4), np.float32,
                        'camera matrix, car object frame -> pixels'),
      'camera_error': tensor((v,), np.float32,
                             'PnP reprojection error in pixels, 0 when '
                             'calibrated'),
      'image_size': tensor((v, 2), np.int32,
                           '(width, height) of the full frame'),
      'shape_3d': tensor((k, 3), np.float32,
                         '3D keypoints in the object frame, 0 when unknown'),
  })


@dataclasses.dataclass(frozen=True)
class View:
  """One view of a car, the per-view fields of the record.

  Attributes:
    crop: (S, S, 3) uint8 RGB crop.
    box: (4,) box in full-frame pixels.
    keypoints: (K, 2) pixel labels, 0 where unlabelled.
    visibility: (K,) `labels.Visibility` codes.
    occlusion_kind: (K,) `labels.OcclusionKind` codes.
    camera: (3, 4) camera matrix, object frame -> pixels.
    camera_error: PnP reprojection error in pixels, 0 when calibrated.
    image_size: (width, height) of the full frame.
    true_keypoints: (K, 2) exact positions of the labelled keypoints, or
      None when the labels are exact.
  """
  crop: np.ndarray
  box: np.ndarray
  keypoints: np.ndarray
  visibility: np.ndarray
  occlusion_kind: np.ndarray
  camera: np.ndarray
  camera_error: float
  image_size: tuple[int, int]
  true_keypoints: np.ndarray | None = None


def make_example(car_id: str, views: Sequence[View],
                 shape_3d: np.ndarray | None = None) -> dict[str, object]:
  """The record of one car, with the dtypes of `features`.

  Args:
    car_id: the example's id.
    views: the car's views, V >= 1.
    shape_3d: (K, 3) object-frame keypoints, or None when unknown (zeros).

  Returns:
    A dict of numpy arrays keyed by feature name.
  """
  if not views:
    raise ValueError(f'{car_id}: an example needs at least one view.')
  num_keypoints = views[0].keypoints.shape[0]

  def stack(field, dtype):
    return np.stack([np.asarray(getattr(view, field)) for view in views]
                    ).astype(dtype)

  return {
      'car_id': car_id,
      'crops': stack('crop', np.uint8),
      'boxes': stack('box', np.float32),
      'keypoints': stack('keypoints', np.float32),
      'true_keypoints': np.stack([
          np.asarray(view.keypoints if view.true_keypoints is None
                     else view.true_keypoints) for view in views
      ]).astype(np.float32),
      'visibility': stack('visibility', np.int32),
      'occlusion_kind': stack('occlusion_kind', np.int32),
      'cameras': stack('camera', np.float32),
      'camera_error': stack('camera_error', np.float32),
      'image_size': stack('image_size', np.int32),
      'shape_3d': (np.zeros((num_keypoints, 3), np.float32) if shape_3d is None
                   else np.asarray(shape_3d, np.float32)),
  }
