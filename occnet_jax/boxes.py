"""Box-normalised keypoint coordinates.

Inside the graph networks a keypoint lives in the coordinates of its car's
box: (-1, -1) is the box's top-left corner and (1, 1) its bottom-right, per
axis, as in the authors' release. Boxes are (x0, y0, x1, y1) in full-frame
pixels. Both functions are pure jax.numpy and batch over leading axes.
"""

import jax.numpy as jnp
import numpy as np

# The box of padding views: a unit box keeps every division finite.
UNIT_BOX = np.array([0.0, 0.0, 1.0, 1.0], np.float32)


def to_box_coordinates(points, boxes):
  """Pixels (..., K, 2) -> box-normalised coordinates, boxes (..., 4)."""
  origin = boxes[..., None, :2]
  size = boxes[..., None, 2:] - origin
  return 2.0 * (points - origin) / size - 1.0


def from_box_coordinates(points, boxes):
  """Box-normalised coordinates (..., K, 2) -> pixels, boxes (..., 4)."""
  origin = boxes[..., None, :2]
  size = boxes[..., None, 2:] - origin
  return origin + 0.5 * (points + 1.0) * size


def box_scale(boxes):
  """max(box width, box height), shape (...): the scale of a padded box.

  PCK's L is the tight box's (`cropping.pck_scale`).
  """
  return jnp.maximum(boxes[..., 2] - boxes[..., 0],
                     boxes[..., 3] - boxes[..., 1])
