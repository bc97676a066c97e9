"""Cameras of uncalibrated views from each car's own 3D keypoints.

Real CarFusion publishes no calibration. The paper poses every view by PnP
between its visible keypoints and "the 3D points computed from [32]"
(Sec. 4.1, "Preprocessing"): each car's own 3D keypoints, reconstructed
from the views that see it. Posing every view against one mean car instead
makes the cameras of a car disagree with one another by the car's shape
difference, and the trifocal targets transferred through them miss the
true positions by several percent of L (RESULTS.md, "Trifocal labels").

`calibrate` reconstructs the cars of one sequence and their views'
cameras, alternating for `rounds` rounds:

1. Triangulate each car's keypoints from their visible labels in two or
   more posed views, robustly: every pair of views proposes a point
   (`cv2.triangulatePoints`), the one that the most views agree with
   (reprojection within `INLIER_THRESHOLD` L of their labels) wins, and
   the point is triangulated again from those views
   (`geometry.triangulate`).
2. Express the car in the shape basis's frame: the similarity that best
   maps the basis mean onto the triangulated points (`cv2.
   estimateAffine3D`) fixes the car's frame and its scale (images cannot
   tell a car's size); the basis (mean and components, fitted on other
   cars) fitted to the triangulated points fills the keypoints seen in
   fewer than two views.
3. Estimate each camera's focal length, shared over all its views (cars
   and frames), by `cv2.calibrateCamera` over its views' visible labels
   and the cars' current 3D keypoints, the principal point fixed at the
   image centre, square pixels and no distortion (cameras with fewer than
   `MIN_FOCAL_VIEWS` views of `MIN_FOCAL_POINTS` visible labels keep the
   initial focal length).
4. Pose every view by PnP (`cv2.solvePnP`, Levenberg-Marquardt from the
   previous pose) against its car's current 3D keypoints, dropping labels
   farther than `OUTLIER_THRESHOLD` L from the reprojection once.

The first poses come from PnP against the basis mean with the initial
focal length. A view converges when its final mean reprojection error is
at most `MAX_REPROJECTION_ERROR` L; the others, and views that PnP cannot
pose, are returned as failures with their reason, for the caller to count,
log and skip. L is the view's PCK length over its visible labels
(max(width, height) of their box).

numpy and OpenCV, not jit-able; one sequence at a time.
"""

from collections.abc import Hashable, Mapping, Sequence
import dataclasses
import itertools

import cv2
import numpy as np

from occnet_jax import geometry

ROUNDS = 15
MIN_PNP_POINTS = 4
# Views with fewer visible labels do not take part in the focal length, and
# a camera with fewer such views keeps its initial focal length: one view
# hardly tells focal length from distance.
MIN_FOCAL_POINTS = 6
MIN_FOCAL_VIEWS = 5
# Reprojection errors, in units of the view's L. Simulated annotators place
# visible labels with 0.015 L per axis (RESULTS.md), so 0.06 L is about
# three standard deviations of the 2D error.
INLIER_THRESHOLD = 0.06
OUTLIER_THRESHOLD = 0.1
MAX_REPROJECTION_ERROR = 0.05
# Focal lengths outside this range (image widths) are not believed: the
# previous estimate is kept.
FOCAL_RANGE = (0.2, 5.0)
# Weight of the shape coefficients' prior (unit variance) against the
# squared distances of the triangulated points, in units of the basis's
# coordinates.
_COEFFICIENT_PRIOR = 1e-2
_FOCAL_FLAGS = (cv2.CALIB_USE_INTRINSIC_GUESS | cv2.CALIB_USE_EXTRINSIC_GUESS
                | cv2.CALIB_FIX_PRINCIPAL_POINT | cv2.CALIB_FIX_ASPECT_RATIO
                | cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_FIX_K1
                | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3)
_FOCAL_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 10, 1e-6)

FAILURES = {
    'too_few_points': f'fewer than {MIN_PNP_POINTS} visible labels',
    'pnp_failed': 'PnP found no pose',
    'not_converged':
        f'mean reprojection error above {MAX_REPROJECTION_ERROR} L after '
        'the last round',
}


@dataclasses.dataclass(frozen=True)
class CarView:
  """One car's labels in one view of an uncalibrated sequence.

  Attributes:
    camera: the camera's name; its views share one focal length.
    car: the car's key, e.g. (frame, instance id): views with one key are
      views of one car at one moment.
    keypoints: (K, 2) labels, pixels.
    visible: (K,) True where the label is visible.
    image_size: (width, height) of the camera's images.
  """
  camera: str
  car: Hashable
  keypoints: np.ndarray
  visible: np.ndarray
  image_size: tuple[int, int]

  @property
  def scale(self) -> float:
    """L: max(width, height) of the visible labels' box, at least 1 px."""
    points = self.keypoints[self.visible]
    return float(max(np.ptp(points, axis=0).max() if len(points) else 0.0,
                     1.0))


@dataclasses.dataclass(frozen=True)
class Calibration:
  """What `calibrate` recovered.

  Attributes:
    cameras: (3, 4) camera matrix, car frame -> pixels, by view index, for
      the views that converged.
    reprojection_errors: mean distance in pixels between each converged
      view's visible labels and the projections of its car's 3D keypoints.
    focal_lengths: pixels, by camera name.
    shapes: (K, 3) 3D keypoints by car key, in the basis's frame.
    failures: a reason of `FAILURES` by view index, for the other views.
  """
  cameras: Mapping[int, np.ndarray]
  reprojection_errors: Mapping[int, float]
  focal_lengths: Mapping[str, float]
  shapes: Mapping[Hashable, np.ndarray]
  failures: Mapping[int, str]


def _intrinsics(focal: float, image_size: tuple[int, int]) -> np.ndarray:
  width, height = image_size
  return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2],
                   [0.0, 0.0, 1.0]])


def _projection(intrinsics, pose) -> np.ndarray:
  rotation, _ = cv2.Rodrigues(pose[0])
  return intrinsics @ np.concatenate([rotation, pose[1].reshape(3, 1)], 1)


def _residuals(view: CarView, intrinsics, pose, shape) -> np.ndarray:
  """(K,) pixel distances between the labels and the reprojections."""
  projected, _ = cv2.projectPoints(shape, pose[0], pose[1], intrinsics, None)
  return np.linalg.norm(projected[:, 0] - view.keypoints, axis=-1)


def _pose(view: CarView, intrinsics, shape, previous):
  """(rvec, tvec) of a view against `shape`, or None when PnP fails."""
  used = view.visible.copy()
  for _ in range(2):
    if previous is None:
      try:
        result = geometry.solve_pnp(shape[used], view.keypoints[used],
                                    intrinsics)
      except geometry.PnPError:
        return None
      pose = cv2.Rodrigues(result.rotation)[0], result.translation.copy()
    else:
      success, rvec, tvec = cv2.solvePnP(
          shape[used], view.keypoints[used].astype(np.float64), intrinsics,
          None, previous[0].copy(), previous[1].copy().reshape(3, 1),
          useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
      if not success or not np.all(np.isfinite(tvec)):
        return None
      pose = rvec, tvec[:, 0]
    camera_depth = (shape @ cv2.Rodrigues(pose[0])[0].T + pose[1])[:, 2]
    if np.any(camera_depth[view.visible] <= 0):
      return None
    # One robust step: labels far from the fit are refitted without.
    inliers = view.visible & (_residuals(view, intrinsics, pose, shape) <=
                              OUTLIER_THRESHOLD * view.scale)
    if np.array_equal(inliers, used) or inliers.sum() < MIN_PNP_POINTS + 1:
      return pose
    used, previous = inliers, pose
  return pose


def _robust_inliers(cameras: np.ndarray, points: np.ndarray,
                    seen: np.ndarray, scales: np.ndarray) -> np.ndarray:
  """(K, V) views that agree with each keypoint's best two-view point.

  Args:
    cameras: (V, 3, 4) the car's posed views.
    points: (V, K, 2) labels.
    seen: (V, K) visible labels of posed views.
    scales: (V,) L of each view.
  """
  num_views, num_keypoints = seen.shape
  best_count = np.zeros(num_keypoints, int)
  best_error = np.full(num_keypoints, np.inf)
  inliers = np.zeros((num_keypoints, num_views), bool)
  for a, b in itertools.combinations(range(num_views), 2):
    both = seen[a] & seen[b]
    if not both.any():
      continue
    homogeneous = cv2.triangulatePoints(cameras[a], cameras[b],
                                        points[a].T.astype(np.float64),
                                        points[b].T.astype(np.float64))
    with np.errstate(divide='ignore', invalid='ignore'):
      candidate = homogeneous[:3] / homogeneous[3]  # (3, K)
      projected = np.einsum('vij,jk->vik', cameras[:, :, :3],
                            candidate) + cameras[:, :, 3:]
      depth = projected[:, 2]
      pixels = np.moveaxis(projected[:, :2] / depth[:, None], 1, 2)
    error = np.linalg.norm(pixels - points, axis=-1) / scales[:, None]
    agrees = seen & (depth > 0) & (error <= INLIER_THRESHOLD)
    count = agrees.sum(0)
    total = np.where(agrees, error, 0.0).sum(0)
    better = both & agrees[a] & agrees[b] & (
        (count > best_count) | ((count == best_count) & (total < best_error)))
    best_count = np.where(better, count, best_count)
    best_error = np.where(better, total, best_error)
    inliers[better] = agrees.T[better]
  return inliers


def _shape_in_basis_frame(points, valid, mean, components):
  """The car's 3D keypoints in the basis frame, filled where not valid.

  Returns:
    (shape (K, 3), similarity (scale, rotation, translation) mapping the
    basis frame to the triangulation's frame), or None with fewer than 4
    valid points.
  """
  if valid.sum() < 4:
    return None
  transform, scale = cv2.estimateAffine3D(mean[valid], points[valid],
                                          force_rotation=True)
  rotation, translation = transform[:, :3], transform[:, 3]
  if not np.isfinite(scale) or scale <= 0:
    return None
  in_basis = (points - translation) @ rotation / scale
  # Shape coefficients by ridge least squares over the valid points.
  basis = components[:, valid].reshape(len(components), 3 * valid.sum()).T
  residual = (in_basis[valid] - mean[valid]).reshape(-1)
  system = np.concatenate([basis, np.sqrt(_COEFFICIENT_PRIOR) *
                           np.eye(len(components))])
  target = np.concatenate([residual, np.zeros(len(components))])
  coefficients = np.linalg.lstsq(system, target, rcond=None)[0]
  filled = mean + np.einsum('n,nkd->kd', coefficients, components)
  shape = np.where(valid[:, None], in_basis, filled)
  return shape, (scale, rotation, translation)


def _reframed_pose(pose, similarity):
  """The pose of a view in the basis frame of a car reframed by similarity."""
  scale, rotation, translation = similarity
  camera_rotation = cv2.Rodrigues(pose[0])[0]
  return (cv2.Rodrigues(camera_rotation @ rotation)[0],
          (camera_rotation @ translation + pose[1]) / scale)


def _triangulate_cars(views, poses, focal, shapes, mean, components):
  """New shapes by car key, and the poses reframed with them."""
  by_car = {}
  for index, view in enumerate(views):
    if poses[index] is not None:
      by_car.setdefault(view.car, []).append(index)
  num_keypoints = len(mean)
  max_views = max((len(indices) for indices in by_car.values()), default=0)
  cars = [car for car, indices in by_car.items() if len(indices) >= 2]
  if not cars:
    return shapes, poses
  cameras = np.zeros((len(cars), max_views, 3, 4))
  labels = np.zeros((len(cars), max_views, num_keypoints, 2))
  weights = np.zeros((len(cars), num_keypoints, max_views))
  for c, car in enumerate(cars):
    indices = by_car[car]
    car_cameras = np.stack([
        _projection(_intrinsics(focal[views[i].camera], views[i].image_size),
                    poses[i]) for i in indices])
    points = np.stack([views[i].keypoints for i in indices]).astype(float)
    seen = np.stack([views[i].visible for i in indices])
    scales = np.array([views[i].scale for i in indices])
    inliers = _robust_inliers(car_cameras, points, seen, scales)
    cameras[c, :len(indices)] = car_cameras
    labels[c, :len(indices)] = points
    weights[c, :, :len(indices)] = inliers
  # One batched call for every keypoint of every car: (N, K, V, ...).
  points, valid = geometry.triangulate(
      np.broadcast_to(cameras[:, None], (len(cars), num_keypoints,
                                         max_views, 3, 4)),
      np.swapaxes(labels, 1, 2), weights)
  points = np.asarray(points, np.float64)
  valid = np.asarray(valid) & (weights.sum(-1) >= 2)
  shapes, poses = dict(shapes), list(poses)
  for c, car in enumerate(cars):
    reframed = _shape_in_basis_frame(points[c], valid[c], mean, components)
    if reframed is None:
      continue
    shapes[car], similarity = reframed
    for i in by_car[car]:
      poses[i] = _reframed_pose(poses[i], similarity)
  return shapes, poses


def _focal_lengths(views, poses, focal, shapes):
  """Each camera's focal length over its posed views (`cv2.calibrateCamera`)."""
  focal = dict(focal)
  for camera in sorted(focal):
    indices = [i for i, view in enumerate(views)
               if view.camera == camera and poses[i] is not None and
               view.visible.sum() >= MIN_FOCAL_POINTS]
    if len(indices) < MIN_FOCAL_VIEWS:
      continue
    image_size = views[indices[0]].image_size
    object_points = [shapes[views[i].car][views[i].visible].astype(np.float32)
                     for i in indices]
    image_points = [views[i].keypoints[views[i].visible].astype(np.float32)
                    for i in indices]
    try:
      _, intrinsics, _, _, _ = cv2.calibrateCamera(
          object_points, image_points, image_size,
          _intrinsics(focal[camera], image_size), np.zeros(5),
          [poses[i][0].astype(np.float64).reshape(3, 1) for i in indices],
          [poses[i][1].astype(np.float64).reshape(3, 1) for i in indices],
          flags=_FOCAL_FLAGS, criteria=_FOCAL_CRITERIA)
    except cv2.error:
      continue
    estimate = float(intrinsics[0, 0])
    if FOCAL_RANGE[0] <= estimate / image_size[0] <= FOCAL_RANGE[1]:
      focal[camera] = estimate
  return focal


def calibrate(views: Sequence[CarView], mean: np.ndarray,
              components: np.ndarray | None = None, *,
              initial_focal_in_widths: float = 1.0,
              rounds: int = ROUNDS) -> Calibration:
  """Cameras and 3D keypoints of the cars of one uncalibrated sequence.

  Args:
    views: every car view of the sequence.
    mean: (K, 3) basis mean shape, fitted on other cars: the first 3D
      keypoints of every car and the frame and scale of the results.
    components: optional (n, K, 3) basis components scaled by their
      standard deviations, for the keypoints seen in fewer than two views.
    initial_focal_in_widths: every camera's first focal length, in image
      widths.
    rounds: rounds of triangulation, focal lengths and PnP.

  Returns:
    The `Calibration`.
  """
  mean = np.asarray(mean, np.float64)
  components = (np.zeros((0,) + mean.shape) if components is None else
                np.asarray(components, np.float64))
  focal = {view.camera: initial_focal_in_widths * view.image_size[0]
           for view in views}
  shapes = {view.car: mean for view in views}
  failures = {}
  poses = []
  for index, view in enumerate(views):
    pose = None
    if view.visible.sum() < MIN_PNP_POINTS:
      failures[index] = 'too_few_points'
    else:
      pose = _pose(view, _intrinsics(focal[view.camera], view.image_size),
                   mean, None)
      if pose is None:
        failures[index] = 'pnp_failed'
    poses.append(pose)
  for _ in range(rounds):
    shapes, poses = _triangulate_cars(views, poses, focal, shapes, mean,
                                      components)
    focal = _focal_lengths(views, poses, focal, shapes)
    poses = [None if pose is None else _pose(
        view, _intrinsics(focal[view.camera], view.image_size),
        shapes[view.car], pose) for view, pose in zip(views, poses)]
  cameras, errors = {}, {}
  for index, (view, pose) in enumerate(zip(views, poses)):
    if index in failures:
      continue
    if pose is None:
      failures[index] = 'pnp_failed'
      continue
    intrinsics = _intrinsics(focal[view.camera], view.image_size)
    error = _residuals(view, intrinsics, pose, shapes[view.car])[
        view.visible].mean()
    if error > MAX_REPROJECTION_ERROR * view.scale:
      failures[index] = 'not_converged'
      continue
    cameras[index] = _projection(intrinsics, pose)
    errors[index] = float(error)
  return Calibration(cameras=cameras, reprojection_errors=errors,
                     focal_lengths=focal, shapes=shapes, failures=failures)
