"""A closed hull around a model's keypoints, for data without meshes.

Some data comes as 3D keypoints alone (the paper's 472 annotated CAD cars).
To render them and decide which keypoints a view sees, the model is stood in
for by the convex hull of its keypoints plus the points its category derives
from them to give it volume (`keypoints.Synthesis.proxy_points`; for a car,
ground contacts and bumper corners below the lights). A keypoint inside the
hull would always read as self-occluded, so the category's points must keep
every keypoint on the hull; the tests check this for the car on the mean
shape and on procedural cars.

Public API:
  triangle_budget(category) -> most faces a proxy mesh can have (pad to this)
  proxy_mesh(keypoints_3d, category, color, object_id=0) -> mesh.Mesh
"""

import numpy as np
import scipy.spatial

from occnet_jax import keypoints
from occnet_jax import mesh as mesh_lib


def triangle_budget(category: keypoints.Category) -> int:
  """Most faces of a proxy mesh of the category.

  A triangulated convex hull of n points has at most 2n - 4 faces; here n is
  the keypoints and the derived points (as many for every shape).

  Args:
    category: a category with a `synthesis`.

  Returns:
    The budget.
  """
  num_derived = len(category.synthesis.proxy_points(category.mean_shape))
  return 2 * (category.num_keypoints + num_derived) - 4


def proxy_mesh(keypoints_3d, category: keypoints.Category, color,
               object_id: int = 0) -> mesh_lib.Mesh:
  """The closed convex hull of the keypoints and the category's points.

  Args:
    keypoints_3d: (K, 3) keypoints in the category's order, object frame.
    category: gives `synthesis.proxy_points`.
    color: (3,) albedo of every face.
    object_id: id written on every face.

  Returns:
    A closed mesh with outward (counter-clockwise) faces, tagged
    `Part.BODY`.
  """
  points = np.concatenate([
      np.asarray(keypoints_3d, np.float64),
      np.asarray(category.synthesis.proxy_points(keypoints_3d), np.float64)])
  hull = scipy.spatial.ConvexHull(points)
  faces = hull.simplices.copy()
  # Qhull does not orient its simplices; its facet planes point outward.
  inward = np.sum(mesh_lib.face_normals(points, faces)
                  * hull.equations[:, :3], axis=-1) < 0
  faces[inward] = faces[inward][:, ::-1]
  num_faces = len(faces)
  return mesh_lib.Mesh(
      vertices=points.astype(np.float32),
      faces=faces.astype(np.int32),
      face_colors=np.broadcast_to(np.asarray(color, np.float32),
                                  (num_faces, 3)).copy(),
      object_ids=np.full(num_faces, object_id, np.int32),
      part_ids=np.full(num_faces, int(mesh_lib.Part.BODY), np.int32),
  )
