"""The box rule's padding and the crop of a box: one definition for all.

The datasets (`data_prep`) crop every view with these, and prediction
(`predict.py`) crops a detector's boxes with the same, so a model sees at
prediction exactly the crops it was trained on.
"""

import cv2
import numpy as np

from occnet_jax import boxes as boxes_lib
from occnet_jax import geometry

# Each side of a car's tight box moves out by this fraction of the box's
# width (x) or height (y), as in the authors' COCO conversion (boxes 10-15%
# larger than the labelled points).
BOX_PADDING = 0.1


def padded_box(points: np.ndarray,
               padding: float = BOX_PADDING) -> np.ndarray:
  """The padded bounding box of points.

  Args:
    points: (M, 2) pixel positions, M >= 1: what is visible of a car (the
      corners of its visible pixels, or its visible keypoints).
    padding: each side moves out by this fraction of the points' extent
      along its axis.

  Returns:
    (4,) float32 box (x0, y0, x1, y1); not clipped to the image (the crop is
    zero outside it), so the padding stays symmetric.
  """
  points = np.asarray(points, np.float64)
  if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] != 2:
    raise ValueError(f'Need (M >= 1, 2) points, got {points.shape}.')
  low, high = points.min(axis=0), points.max(axis=0)
  margin = padding * (high - low)
  return np.concatenate([low - margin, high + margin]).astype(np.float32)


def pck_scale(boxes, padding: float = BOX_PADDING):
  """PCK's length L of padded boxes (..., 4): the paper's, of the tight box.

  The paper's L is "the maximum of length and width of the bounding box",
  the tight box of what is visible of the car, not the padded box a crop is
  taken from. `padded_box` makes each side (1 + 2 padding) times the tight
  box's, so L follows from the box alone, exactly, and no occluded keypoint
  enters it. Pure jax.numpy; batches over leading axes.
  """
  return boxes_lib.box_scale(boxes) / (1.0 + 2.0 * padding)


def extract_crop(image: np.ndarray, box: np.ndarray,
                 crop_size: int) -> np.ndarray:
  """Resamples the box of an image to a crop_size x crop_size crop.

  The crop's pixels are those of `geometry.crop_camera(P, box, crop_size)`:
  the box's edges map to the crop's edges. The box is first warped, with
  bilinear interpolation, to an integer multiple of crop_size that is at
  least as fine as the image, then area-averaged down, so large boxes do not
  alias. Outside the image the crop is zero.

  Args:
    image: (H, W, C) uint8 image.
    box: (4,) box (x0, y0, x1, y1) in full-frame pixels, positive size.
    crop_size: S.

  Returns:
    (S, S, C) uint8 crop.
  """
  box = np.asarray(box, np.float64)
  width, height = box[2] - box[0], box[3] - box[1]
  if not (width > 0 and height > 0):
    raise ValueError(f'Box needs a positive size: {box}.')
  oversampling = max(1, int(np.ceil(max(width, height) / crop_size)))
  size = crop_size * oversampling
  transform = np.asarray(geometry.crop_transform(box, size), np.float64)
  # OpenCV indexes pixels by their centres (pixel i spans [i - 0.5, i + 0.5]);
  # our pixel coordinates put pixel i's centre at i + 0.5.
  shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
  index_transform = np.linalg.inv(shift) @ transform @ shift
  warped = cv2.warpAffine(image, index_transform[:2], (size, size),
                          flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  crop = cv2.resize(warped, (crop_size, crop_size),
                    interpolation=cv2.INTER_AREA)
  return crop.reshape(crop_size, crop_size, -1)
