"""Viewpoints on a subdivided icosahedron and the Car-render view cameras.

The paper renders each CAD car "from viewpoints randomly selected on a level 5
icosahedron, at varying focal lengths and distances". This module makes those
viewpoints and the pinhole cameras that look from them at a car.

Public API:
  icosphere_vertices(level) -> (N, 3) unit vectors
  view_directions(level, min_elevation_deg, max_elevation_deg) -> (N, 3)
  ViewSampling: ranges of image size, focal length, apparent size, jitter
  sample_view_cameras(rng, directions, num_views, object_points, sampling)
      -> (V, 3, 4) float64 cameras mapping the object frame to pixels

Object frame as in docs/design.md: x forward, y up, z lateral, metres.
Elevation is the angle of a direction above the x-z (ground) plane.
"""

import dataclasses

import numpy as np

from occnet_jax.geometry import cameras


def _icosahedron() -> tuple[np.ndarray, np.ndarray]:
  phi = (1.0 + np.sqrt(5.0)) / 2.0
  vertices = np.array([
      (-1, phi, 0), (1, phi, 0), (-1, -phi, 0), (1, -phi, 0),
      (0, -1, phi), (0, 1, phi), (0, -1, -phi), (0, 1, -phi),
      (phi, 0, -1), (phi, 0, 1), (-phi, 0, -1), (-phi, 0, 1),
  ], dtype=np.float64)
  faces = np.array([
      (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11),
      (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6), (7, 1, 8),
      (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
      (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1),
  ], dtype=np.int64)
  return vertices / np.linalg.norm(vertices, axis=1, keepdims=True), faces


def _subdivide(vertices, faces):
  """Splits every triangle into four at its edge midpoints (on the sphere)."""
  num_faces = len(faces)
  edges = np.sort(np.concatenate(
      [faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
  unique_edges, edge_of = np.unique(edges, axis=0, return_inverse=True)
  midpoints = vertices[unique_edges].mean(axis=1)
  midpoints /= np.linalg.norm(midpoints, axis=1, keepdims=True)
  m01, m12, m20 = edge_of.reshape(3, num_faces) + len(vertices)
  a, b, c = faces.T
  new_faces = np.concatenate([
      np.stack([a, m01, m20], 1), np.stack([b, m12, m01], 1),
      np.stack([c, m20, m12], 1), np.stack([m01, m12, m20], 1)])
  return np.concatenate([vertices, midpoints]), new_faces


def icosphere_vertices(level: int) -> np.ndarray:
  """Vertices of an icosahedron subdivided `level` times, on the unit sphere.

  Args:
    level: number of 1-to-4 triangle subdivisions (0 = the icosahedron).

  Returns:
    (10 * 4**level + 2, 3) float64 unit vectors.
  """
  if level < 0:
    raise ValueError(f'level must be >= 0, got {level}.')
  vertices, faces = _icosahedron()
  for _ in range(level):
    vertices, faces = _subdivide(vertices, faces)
  return vertices


def view_directions(level: int = 5,
                    min_elevation_deg: float = -10.0,
                    max_elevation_deg: float = 75.0) -> np.ndarray:
  """Directions from the object towards the camera, on a level-`level` sphere.

  Cars are seen from above or from near the horizon, so only the upper
  hemisphere and slightly-below-horizontal directions are kept. Views near the
  zenith are dropped too: the up vector of `look_at` degenerates there and no
  street camera looks straight down.

  Args:
    level: icosahedron subdivision level (the paper uses 5).
    min_elevation_deg: lowest elevation kept, degrees.
    max_elevation_deg: highest elevation kept, degrees.

  Returns:
    (N, 3) unit vectors with elevation in [min_elevation, max_elevation].
  """
  vertices = icosphere_vertices(level)
  elevation = np.degrees(np.arcsin(np.clip(vertices[:, 1], -1.0, 1.0)))
  keep = (elevation >= min_elevation_deg) & (elevation <= max_elevation_deg)
  return vertices[keep]


@dataclasses.dataclass(frozen=True)
class ViewSampling:
  """How the Car-render cameras vary.

  Attributes:
    image_size: (width, height) of the full frame in pixels.
    focal_range: focal length range as a multiple of the image width (0.7 to
      2.4 spans 25 mm to 85 mm lenses on a 36 mm sensor).
    fill_range: range of the fraction of min(width, height) covered by the
      object's largest extent; with the focal length it sets the distance.
    target_jitter: the look-at point moves off the object centre by up to this
      fraction of the object's extent, so objects are not always centred.
  """

  image_size: tuple[int, int] = (1920, 1080)
  focal_range: tuple[float, float] = (0.7, 2.4)
  fill_range: tuple[float, float] = (0.3, 0.8)
  target_jitter: float = 0.15


def sample_view_cameras(rng: np.random.Generator,
                        directions: np.ndarray,
                        num_views: int,
                        object_points: np.ndarray,
                        sampling: ViewSampling = ViewSampling()) -> np.ndarray:
  """Cameras looking at an object from distinct random viewpoint directions.

  Args:
    rng: random generator (the only source of randomness).
    directions: (N, 3) candidate unit directions from `view_directions`.
    num_views: number of cameras V (distinct directions, V <= N).
    object_points: (M, 3) points of the object (keypoints or vertices); their
      bounding-box centre is looked at and their largest extent sets the
      distance.
    sampling: focal, distance and framing ranges.

  Returns:
    (V, 3, 4) float64 camera matrices, object frame -> full-frame pixels.
    The object's centre is in the frame; at the largest fills a close,
    steep view can cut an end of a long object at the frame's edge (about
    1 view in 1300 of Car-render's cars; its keypoints there are labelled
    truncated).
  """
  lower, upper = object_points.min(axis=0), object_points.max(axis=0)
  centre, extent = (lower + upper) / 2, float(np.max(upper - lower))
  width, height = sampling.image_size
  chosen = directions[rng.choice(len(directions), num_views, replace=False)]
  focal = rng.uniform(*sampling.focal_range, num_views) * width
  fill = rng.uniform(*sampling.fill_range, num_views)
  distance = focal * extent / (fill * min(width, height))
  targets = centre + rng.uniform(
      -sampling.target_jitter, sampling.target_jitter,
      (num_views, 3)) * extent
  rotation, translation = cameras.look_at(
      targets + distance[:, None] * chosen, targets)
  intrinsics = cameras.intrinsics_matrix(
      focal, np.broadcast_to([width / 2, height / 2], (num_views, 2)))
  return np.asarray(
      cameras.projection_matrix(intrinsics, rotation, translation),
      dtype=np.float64)
