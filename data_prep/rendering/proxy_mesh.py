"""A car-shaped closed hull around 12 keypoints, for data without meshes.

Some data comes as 3D keypoints alone (the paper's 472 annotated CAD cars).
To render them and decide which keypoints a view sees, the car is stood in
for by the convex hull of its keypoints plus points derived from them that
give it a car's volume below the lights:

  - ground contacts under each wheel, one wheel radius below the hub and a
    little inboard (the radius is estimated as a fixed share of the
    wheelbase, as for the mean car);
  - bumper corners under each headlight and tail light, at the height of
    the underbody.

The derived points lie inside the box spanned by the keypoints in x and z,
so the keypoints themselves stay on the hull's surface whenever they are
its outermost points along some direction, as car keypoints are (tops
highest, lights at the ends, hubs outermost); the test checks this on the
mean shape and on procedural cars. A keypoint inside the hull would always
read as self-occluded.

Public API:
  TRIANGLE_BUDGET: most faces a proxy mesh can have (pad to this)
  derived_points(keypoints_3d) -> (8, 3) ground contacts and bumper corners
  proxy_mesh(keypoints_3d, color, object_id=0) -> mesh.Mesh
"""

import numpy as np
import scipy.spatial

from data_prep.rendering import mesh as mesh_lib

# Indices in keypoints.CAR order.
_WHEELS = (0, 1, 2, 3)
_HEADLIGHTS = (4, 5)
_BACK_LIGHTS = (6, 7)
# Wheel radius over wheelbase, and underbody height over wheel radius, of
# the mean car (radius about 0.33 m, wheelbase 3.0 m, underbody 0.15 m).
_RADIUS_PER_WHEELBASE = 0.11
_UNDERBODY_PER_RADIUS = 0.45
# Ground contacts sit this share of the hub's lateral offset inboard, so
# the hub stays the outermost point.
_CONTACT_INBOARD = 0.05
# A triangulated convex hull of n points has at most 2n - 4 faces; here
# n = 12 keypoints + 8 derived points.
TRIANGLE_BUDGET = 2 * (12 + 8) - 4


def derived_points(keypoints_3d) -> np.ndarray:
  """Ground contacts (4) and bumper corners (4) implied by the keypoints.

  Args:
    keypoints_3d: (12, 3) keypoints in `keypoints.CAR` order, object frame
      (y up).

  Returns:
    (8, 3) points: contacts under the four wheels, then corners under the
    two headlights and the two back lights.
  """
  points = np.asarray(keypoints_3d, np.float64)
  wheels = points[list(_WHEELS)]
  wheelbase = 0.5 * (np.linalg.norm(wheels[0] - wheels[2])
                     + np.linalg.norm(wheels[1] - wheels[3]))
  radius = _RADIUS_PER_WHEELBASE * wheelbase
  contacts = wheels - np.array([0.0, radius, 0.0])
  contacts[:, 2] *= 1.0 - _CONTACT_INBOARD
  underbody_y = np.mean(contacts[:, 1]) + _UNDERBODY_PER_RADIUS * radius
  lights = points[list(_HEADLIGHTS + _BACK_LIGHTS)]
  bumpers = lights.copy()
  bumpers[:, 1] = np.minimum(lights[:, 1], underbody_y)
  return np.concatenate([contacts, bumpers])


def proxy_mesh(keypoints_3d, color, object_id: int = 0) -> mesh_lib.Mesh:
  """The closed convex hull of the keypoints and `derived_points`.

  Args:
    keypoints_3d: (12, 3) keypoints in `keypoints.CAR` order.
    color: (3,) albedo of every face.
    object_id: id written on every face.

  Returns:
    A closed mesh with outward (counter-clockwise) faces, tagged
    `Part.BODY`.
  """
  points = np.concatenate([np.asarray(keypoints_3d, np.float64),
                           derived_points(keypoints_3d)])
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
