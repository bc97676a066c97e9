"""Camera pose from 2D-3D keypoint correspondences (PnP) with OpenCV.

Used to estimate the virtual camera of each CarFusion view (paper 4.1):
numpy in, numpy out, not jit-able. EPnP gives the initial pose, which
Levenberg-Marquardt (`cv2.solvePnPRefineLM`) refines.
"""

import dataclasses

import cv2
import numpy as np

# Relative singular-value threshold below which a point set counts as
# collinear (or coincident).
_DEGENERATE_RATIO = 1e-6


class PnPError(ValueError):
  """The pose cannot be estimated from the given correspondences."""


@dataclasses.dataclass(frozen=True)
class PnPResult:
  """A camera pose estimated by `solve_pnp`.

  Attributes:
    rotation: (3, 3) world-to-camera rotation R.
    translation: (3,) translation t (x_cam = R X + t).
    projection: (3, 4) camera matrix K [R | t].
    reprojection_error: mean distance in pixels between the given 2D points
      and the projections of the 3D points, over the points used.
  """

  rotation: np.ndarray
  translation: np.ndarray
  projection: np.ndarray
  reprojection_error: float


def _is_collinear(points):
  centred = points - points.mean(axis=0)
  singular_values = np.linalg.svd(centred, compute_uv=False)
  return singular_values[1] <= _DEGENERATE_RATIO * max(singular_values[0],
                                                       1e-300)


def solve_pnp(points_3d, points_2d, K, dist=None):
  """Estimates the pose of a calibrated camera from N >= 4 correspondences.

  Rows where either point is not finite are ignored (e.g. unlabelled
  keypoints passed as NaN).

  Args:
    points_3d: (N, 3) object-frame points.
    points_2d: (N, 2) their pixels (design.md conventions).
    K: (3, 3) intrinsics.
    dist: optional OpenCV distortion coefficients.

  Returns:
    A `PnPResult`.

  Raises:
    PnPError: fewer than 4 finite correspondences, collinear or coincident
      3D or 2D points, no convergence, or points behind the estimated camera.
  """
  points_3d = np.asarray(points_3d, np.float64)
  points_2d = np.asarray(points_2d, np.float64)
  if points_3d.ndim != 2 or points_3d.shape[1] != 3 or points_2d.shape != (
      len(points_3d), 2):
    raise PnPError(f'Expected (N, 3) and (N, 2) points, got {points_3d.shape} '
                   f'and {points_2d.shape}.')
  used = np.all(np.isfinite(points_3d), 1) & np.all(np.isfinite(points_2d), 1)
  points_3d, points_2d = points_3d[used], points_2d[used]
  if len(points_3d) < 4:
    raise PnPError(
        f'PnP needs at least 4 finite correspondences, got {len(points_3d)}.')
  if _is_collinear(points_3d):
    raise PnPError('The 3D points are collinear or coincident.')
  if _is_collinear(points_2d):
    raise PnPError('The 2D points are collinear or coincident.')
  K = np.asarray(K, np.float64)
  dist = None if dist is None else np.asarray(dist, np.float64)

  success, rvec, tvec = cv2.solvePnP(points_3d, points_2d, K, dist,
                                     flags=cv2.SOLVEPNP_EPNP)
  if not success or not (np.all(np.isfinite(rvec))
                         and np.all(np.isfinite(tvec))):
    raise PnPError('EPnP did not find an initial pose.')
  rvec, tvec = cv2.solvePnPRefineLM(points_3d, points_2d, K, dist, rvec, tvec)
  if not (np.all(np.isfinite(rvec)) and np.all(np.isfinite(tvec))):
    raise PnPError('Pose refinement diverged.')

  rotation, _ = cv2.Rodrigues(rvec)
  translation = tvec[:, 0]
  camera_points = points_3d @ rotation.T + translation
  if np.any(camera_points[:, 2] <= 0):
    raise PnPError('The estimated pose puts points behind the camera.')
  projection = K @ np.concatenate([rotation, translation[:, None]], 1)
  # LM can also run off to a finite pose far beyond any scene, which the
  # float32 records cannot even hold.
  if not np.all(np.abs(projection) < np.finfo(np.float32).max):
    raise PnPError('Pose refinement diverged beyond float32.')
  projected, _ = cv2.projectPoints(points_3d, rvec, tvec, K, dist)
  error = np.linalg.norm(projected[:, 0] - points_2d, axis=1).mean()
  return PnPResult(
      rotation=rotation,
      translation=translation,
      projection=projection,
      reprojection_error=float(error))
