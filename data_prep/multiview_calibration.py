"""Cameras of uncalibrated views from each car's own 3D keypoints.

Real CarFusion publishes no calibration. The paper poses every view by PnP
between its visible keypoints and "the 3D points computed from [32]"
(Sec. 4.1, "Preprocessing"): each car's own 3D keypoints, reconstructed
from the views that see it. Posing every view against one mean car instead
makes the cameras of a car disagree with one another by the car's shape
difference, and the trifocal targets transferred through them miss the
true positions by several percent of L (RESULTS.md, "Trifocal labels").

`calibrate` reconstructs the cars of one sequence and their views'
cameras in two stages.

First each car alone, alternating for `rounds` rounds:

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
3. Pose every view by PnP (`cv2.solvePnP`, Levenberg-Marquardt from the
   previous pose) against its car's current 3D keypoints, dropping labels
   farther than `OUTLIER_THRESHOLD` L from the reprojection once.

The first poses come from PnP against the basis mean at the initial focal
length. A car alone is seen in few views, with its visible labels mostly
on its near side: its cameras stay several percent of L off (measured in
data_prep/carfusion/README.md).

Then the whole sequence: the views of one shot (`CarView.shot`: one camera
at one pose, e.g. the cars of one image) share one pose, found from all the
cars it sees, as structure from motion over the scene would. Incremental
structure from motion places the shots and cars (`_incremental_scene`),
and a bundle adjustment refines every shot's pose, each camera's focal
length (shared over its shots) and every car's 3D keypoints together
(`_adjusted_scene`, scipy's least squares with a robust loss). The cars
whose views the incremental poses left in disagreement are triangulated
again from the adjusted shots, and a second adjustment refines them with
the rest (`_bundle_adjust`). Views that no placed shot covers keep their
own pose from the first stage.

A view converges when its final mean reprojection error is at most
`MAX_REPROJECTION_ERROR` L; the others, and views that PnP cannot pose, are
returned as failures with their reason, for the caller to count, log and
skip. L is the view's PCK length over its visible labels (max(width,
height) of their box).

numpy, OpenCV and scipy, not jit-able; one sequence at a time.
"""

from collections.abc import Hashable, Mapping, Sequence
import collections
import dataclasses
import itertools

import cv2
import numpy as np
import scipy.optimize
import scipy.sparse

from occnet_jax import geometry

ROUNDS = 5
MIN_PNP_POINTS = 4
# Reprojection errors, in units of the view's L. Simulated annotators place
# visible labels with 0.015 L per axis (RESULTS.md), so 0.06 L is about
# three standard deviations of the 2D error.
INLIER_THRESHOLD = 0.06
OUTLIER_THRESHOLD = 0.1
MAX_REPROJECTION_ERROR = 0.05
# Focal lengths (image widths) the bundle adjustment may reach, for cameras
# with at least MIN_FOCAL_VIEWS views in it.
FOCAL_RANGE = (0.2, 5.0)
MIN_FOCAL_VIEWS = 5
# Weight of the shape coefficients' prior (unit variance) against the
# squared distances of the triangulated points, in units of the basis's
# coordinates.
_COEFFICIENT_PRIOR = 1e-2
# The bundle adjustment's soft-L1 scale, in units of L: two standard
# deviations of a simulated annotator's visible label per axis.
_ROBUST_SCALE = 0.03
_MAX_EVALUATIONS = 100
# A shot is placed by PnP on at least this many points of placed cars.
_MIN_SHOT_POINTS = 8
# Cars per `geometry.triangulate` call are padded to a multiple of this:
# each new shape compiles it.
_TRIANGULATION_QUANTUM = 64

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
    shot: views with one shot key were taken by one camera at one pose and
      share it, e.g. (camera, frame) for the cars of one image, or the
      camera alone for a camera that does not move; None: the view's pose
      is its own.
  """
  camera: str
  car: Hashable
  keypoints: np.ndarray
  visible: np.ndarray
  image_size: tuple[int, int]
  shot: Hashable | None = None

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


def _triangulate(cameras, labels, seen, scales):
  """Robust triangulation of several cars' keypoints, batched.

  Args:
    cameras: by car, (V, 3, 4) its views' cameras, V >= 2.
    labels: by car, (V, K, 2) labels.
    seen: by car, (V, K) visible labels.
    scales: by car, (V,) L of each view.

  Returns:
    (points (N, K, 3), valid (N, K)): valid where two or more views agree.
  """
  num_keypoints = seen[0].shape[1]
  num_cars = -(-len(cameras) // _TRIANGULATION_QUANTUM) * (
      _TRIANGULATION_QUANTUM)
  max_views = -(-max(len(car_cameras) for car_cameras in cameras) // 4) * 4
  padded_cameras = np.zeros((num_cars, max_views, 3, 4))
  padded_labels = np.zeros((num_cars, max_views, num_keypoints, 2))
  weights = np.zeros((num_cars, num_keypoints, max_views))
  for c in range(len(cameras)):
    num_views = len(cameras[c])
    padded_cameras[c, :num_views] = cameras[c]
    padded_labels[c, :num_views] = labels[c]
    weights[c, :, :num_views] = _robust_inliers(cameras[c], labels[c],
                                                seen[c], scales[c])
  # One call for every keypoint of every car: (N, K, V, ...).
  points, valid = geometry.triangulate(
      np.broadcast_to(padded_cameras[:, None], (num_cars, num_keypoints,
                                                max_views, 3, 4)),
      np.swapaxes(padded_labels, 1, 2), weights)
  return (np.asarray(points, np.float64)[:len(cameras)],
          (np.asarray(valid) & (weights.sum(-1) >= 2))[:len(cameras)])


def _car_arrays(views, indices):
  """(labels (V, K, 2), seen (V, K), scales (V,)) of views of one car."""
  return (np.stack([views[i].keypoints for i in indices]).astype(np.float64),
          np.stack([views[i].visible for i in indices]),
          np.array([views[i].scale for i in indices]))


def _triangulate_cars(views, poses, focal, shapes, mean, components):
  """New shapes by car key, and the poses reframed with them."""
  by_car = {}
  for index, view in enumerate(views):
    if poses[index] is not None:
      by_car.setdefault(view.car, []).append(index)
  cars = [car for car, indices in by_car.items() if len(indices) >= 2]
  if not cars:
    return shapes, poses
  points, valid = _triangulate(
      [np.stack([_projection(_intrinsics(focal[views[i].camera],
                                         views[i].image_size), poses[i])
                 for i in by_car[car]]) for car in cars],
      *zip(*(_car_arrays(views, by_car[car]) for car in cars)))
  shapes, poses = dict(shapes), list(poses)
  for c, car in enumerate(cars):
    reframed = _shape_in_basis_frame(points[c], valid[c], mean, components)
    if reframed is None:
      continue
    shapes[car], similarity = reframed
    for i in by_car[car]:
      poses[i] = _reframed_pose(poses[i], similarity)
  return shapes, poses


def _triangulated_cars(views, views_of_car, shots, shot_poses, focal):
  """{car: (points, valid)} of the cars seen in two or more placed shots."""
  placed = {car: [i for i in indices if shots[i] in shot_poses]
            for car, indices in views_of_car.items()}
  cars = [car for car, indices in placed.items() if len(indices) >= 2]
  if not cars:
    return {}
  points, valid = _triangulate(
      [np.stack([_intrinsics(focal[views[i].camera], views[i].image_size) @
                 np.concatenate([shot_poses[shots[i]][0],
                                 shot_poses[shots[i]][1][:, None]], 1)
                 for i in placed[car]]) for car in cars],
      *zip(*(_car_arrays(views, placed[car]) for car in cars)))
  return {car: (points[c], valid[c]) for c, car in enumerate(cars)
          if valid[c].sum() >= 4}


def _shot_keys(views) -> list[Hashable]:
  """Each view's shot: its own when it names none."""
  return [('view', index) if view.shot is None else ('shot', view.shot)
          for index, view in enumerate(views)]


def _placed_shot(views, indices, cars, focal):
  """(rotation, translation) of a shot by PnP against placed cars, or None.

  Args:
    views: the sequence's views.
    indices: the shot's views.
    cars: {car: (points (K, 3), valid (K,))} in the part's world frame.
    focal: focal lengths by camera.
  """
  world, pixels, scales = [], [], []
  for index in indices:
    view = views[index]
    if view.car not in cars:
      continue
    points, valid = cars[view.car]
    used = view.visible & valid
    world.append(points[used])
    pixels.append(view.keypoints[used])
    scales.append(np.full(used.sum(), view.scale))
  world, pixels = np.concatenate(world or [np.zeros((0, 3))]), np.concatenate(
      pixels or [np.zeros((0, 2))])
  if len(world) < _MIN_SHOT_POINTS:
    return None
  first = views[indices[0]]
  success, rotation_vector, translation, inliers = cv2.solvePnPRansac(
      world, pixels, _intrinsics(focal[first.camera], first.image_size), None,
      reprojectionError=INLIER_THRESHOLD * float(np.median(
          np.concatenate(scales))), flags=cv2.SOLVEPNP_EPNP)
  if not success or inliers is None or len(inliers) < _MIN_SHOT_POINTS:
    return None
  return cv2.Rodrigues(rotation_vector)[0], translation[:, 0]


def _incremental_scene(views, shots, views_of_car, poses, focal, shapes):
  """Shot poses and cars' 3D keypoints in one frame per connected part.

  Incremental structure from motion, started from the per-car
  reconstructions: a part's world frame is the frame of its car with the
  most posed views, whose shots take their poses from its views. Then, in
  turn until no shot is added: every car seen in two or more placed shots
  is triangulated (`_triangulated_cars`), and every shot not yet placed is
  posed by RANSAC PnP against all the placed cars it sees (one car gives a
  shot a few points on its near side; the cars of one image give it
  dozens, around it).

  Returns:
    (shot poses {shot: (rotation, translation)}, world -> camera; cars
    {car: (points (K, 3), valid (K,))}, world frame).
  """
  views_of_shot = {}
  for index, shot in enumerate(shots):
    views_of_shot.setdefault(shot, []).append(index)
  num_posed = {car: sum(poses[i] is not None for i in indices)
               for car, indices in views_of_car.items()}
  shot_poses, cars = {}, {}
  for start in sorted(views_of_car, key=lambda car: -num_posed[car]):
    start_views = [i for i in views_of_car[start] if poses[i] is not None]
    # A car with a placed shot is in a part already: if it is not placed,
    # too few of its views are.
    if not start_views or any(shots[i] in shot_poses for i in start_views):
      continue
    for index in start_views:
      shot_poses.setdefault(shots[index], (
          cv2.Rodrigues(poses[index][0])[0], poses[index][1]))
    # Its keypoints that two posed views see were triangulated; the others
    # come from the basis.
    cars[start] = (shapes[start], np.sum(
        [views[i].visible for i in start_views], axis=0) >= 2)
    while True:
      cars |= _triangulated_cars(views, views_of_car, shots, shot_poses, focal)
      added = {shot: _placed_shot(views, indices, cars, focal)
               for shot, indices in views_of_shot.items()
               if shot not in shot_poses}
      added = {shot: pose for shot, pose in added.items() if pose is not None}
      if not added:
        break
      shot_poses |= added
  return shot_poses, cars


def _rotations(vectors: np.ndarray) -> np.ndarray:
  """(N, 3, 3) rotations of (N, 3) rotation vectors (Rodrigues)."""
  angle = np.linalg.norm(vectors, axis=-1)[:, None, None]
  axis = vectors / np.maximum(angle[:, :, 0], 1e-12)
  cross = np.zeros(vectors.shape[:1] + (3, 3))
  cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = (-axis[:, 2], axis[:, 1],
                                                    -axis[:, 0])
  cross -= np.swapaxes(cross, 1, 2)
  return (np.eye(3) + np.sin(angle) * cross +
          (1 - np.cos(angle)) * cross @ cross)


def _adjusted_scene(views, shots, shot_poses, cars, focal):
  """One bundle adjustment of the placed shots and cars.

  Minimises the robust (soft L1) reprojection error, in units of each
  view's L, of every visible label of a triangulated keypoint, over each
  shot's pose, each camera's focal length and each car's 3D keypoints
  (scipy's trust-region least squares, the Jacobian by finite differences
  over its known sparsity). A shot seen with several cars is pinned by all
  of them: that is what one car alone, seen in few views and on its near
  side, cannot do.

  Args:
    views: the sequence's views.
    shots: each view's shot key.
    shot_poses: {shot: (rotation matrix, translation)}, world -> camera.
    cars: {car: (points (K, 3), valid (K,))}, world frame.
    focal: focal lengths by camera.

  Returns:
    (shot_poses, focal, cars), refined, in the same form.
  """
  used = [index for index, view in enumerate(views)
          if shots[index] in shot_poses and view.car in cars]
  shot_list = sorted(shot_poses, key=str)
  # A camera's focal length is adjusted when it has `MIN_FOCAL_VIEWS`
  # views: one view hardly tells focal length from distance.
  num_views = collections.Counter(views[index].camera for index in used)
  camera_list = sorted(num_views, key=lambda camera: (
      num_views[camera] < MIN_FOCAL_VIEWS, camera))
  num_free = sum(count >= MIN_FOCAL_VIEWS for count in num_views.values())
  fixed_focal = np.array([focal[camera] for camera in camera_list[num_free:]])
  car_list = list(cars)
  shot_of = {shot: s for s, shot in enumerate(shot_list)}
  camera_of = {camera: c for c, camera in enumerate(camera_list)}
  point_of = {}
  for car in car_list:
    for k in np.flatnonzero(cars[car][1]):
      point_of[car, k] = len(point_of)
  observations = [(index, k) for index in used
                  for k in np.flatnonzero(views[index].visible)
                  if (views[index].car, k) in point_of]
  if not observations:
    return shot_poses, focal, cars
  obs_view = np.array([index for index, _ in observations])
  obs_shot = np.array([shot_of[shots[i]] for i in obs_view])
  obs_camera = np.array([camera_of[views[i].camera] for i in obs_view])
  obs_point = np.array([point_of[views[i].car, k] for i, k in observations])
  obs_label = np.array([views[i].keypoints[k] for i, k in observations])
  obs_centre = np.array([np.asarray(views[i].image_size) / 2
                         for i in obs_view])
  obs_weight = np.array([1.0 / views[i].scale for i in obs_view])
  num_shots = len(shot_list)
  widths = np.array([next(views[i].image_size[0] for i in used
                          if views[i].camera == camera)
                     for camera in camera_list[:num_free]], np.float64)
  start = np.concatenate([
      np.concatenate([cv2.Rodrigues(shot_poses[shot][0])[0][:, 0]
                      for shot in shot_list]),
      np.concatenate([shot_poses[shot][1] for shot in shot_list]),
      np.clip([focal[camera] for camera in camera_list[:num_free]],
              FOCAL_RANGE[0] * widths, FOCAL_RANGE[1] * widths),
      np.concatenate([cars[car][0][k] for car, k in point_of])])
  offsets = np.cumsum([0, 3 * num_shots, 3 * num_shots, num_free])

  def unpack(x):
    return (x[:offsets[1]].reshape(-1, 3), x[offsets[1]:offsets[2]].reshape(
        -1, 3), x[offsets[2]:offsets[3]], x[offsets[3]:].reshape(-1, 3))

  def residuals(x):
    rotation_vectors, translations, focal_lengths, points = unpack(x)
    camera_points = np.einsum(
        'oij,oj->oi', _rotations(rotation_vectors)[obs_shot],
        points[obs_point]) + translations[obs_shot]
    focal_lengths = np.concatenate([focal_lengths, fixed_focal])
    pixels = (focal_lengths[obs_camera, None] * camera_points[:, :2] /
              camera_points[:, 2:]) + obs_centre
    return ((pixels - obs_label) * obs_weight[:, None]).ravel()

  columns = np.concatenate([
      3 * obs_shot[:, None] + np.arange(3),
      offsets[1] + 3 * obs_shot[:, None] + np.arange(3),
      # A fixed focal length has no column: its rows repeat a rotation's.
      np.where(obs_camera < num_free, offsets[2] + obs_camera,
               3 * obs_shot)[:, None],
      offsets[3] + 3 * obs_point[:, None] + np.arange(3)], axis=1)
  rows = np.repeat(np.arange(2 * len(observations)), columns.shape[1])
  sparsity = scipy.sparse.csr_matrix(
      (np.ones(rows.size), (rows, np.repeat(columns, 2, axis=0).ravel())),
      shape=(2 * len(observations), start.size))
  lower = np.full(start.size, -np.inf)
  upper = np.full(start.size, np.inf)
  lower[offsets[2]:offsets[3]] = FOCAL_RANGE[0] * widths
  upper[offsets[2]:offsets[3]] = FOCAL_RANGE[1] * widths
  solution = scipy.optimize.least_squares(
      residuals, start, jac_sparsity=sparsity, bounds=(lower, upper),
      loss='soft_l1', f_scale=_ROBUST_SCALE, x_scale='jac',
      max_nfev=_MAX_EVALUATIONS)
  rotation_vectors, translations, focal_lengths, points = unpack(solution.x)
  focal = dict(focal) | dict(zip(camera_list[:num_free],
                                 map(float, focal_lengths)))
  shot_poses = dict(zip(shot_list, zip(_rotations(rotation_vectors),
                                       translations)))
  cars = dict(cars)
  for car in car_list:
    world, valid = cars[car][0].copy(), cars[car][1]
    world[valid] = points[[point_of[car, k] for k in np.flatnonzero(valid)]]
    cars[car] = world, valid
  return shot_poses, focal, cars


def _bundle_adjust(views, shots, poses, focal, shapes, mean, components):
  """Shots, focal lengths and cars refined jointly over the sequence.

  Places the shots and cars by `_incremental_scene` and adjusts them
  (`_adjusted_scene`). The incremental poses are a few percent of L off,
  enough that the views of many cars disagree on every keypoint and those
  cars stay out of the scene (two in five views in the reproduction's test
  split, with targets twice as far off), and that cars in it keep only the
  few keypoints their views agreed on; the adjusted shots triangulate
  both, and a second adjustment refines them with the rest.

  Returns:
    (poses, focal, shapes) as `calibrate` keeps them; views whose shot or
    car is not placed, or whose car keeps fewer than 4 triangulated
    keypoints, get None.
  """
  views_of_car = {}
  for index, view in enumerate(views):
    views_of_car.setdefault(view.car, []).append(index)
  shot_poses, cars = _incremental_scene(views, shots, views_of_car, poses,
                                        focal, shapes)
  shot_poses, focal, cars = _adjusted_scene(views, shots, shot_poses, cars,
                                            focal)
  # The adjusted shots triangulate again: the cars left out of the scene,
  # and the keypoints of the scene's cars that no two views agreed on under
  # the incremental poses (a car with few of them gets the rest from the
  # basis fit, and so a wrong shape that every view of it then fails).
  grown = dict(cars)
  for car, (points, valid) in _triangulated_cars(
      views, views_of_car, shots, shot_poses, focal).items():
    if car not in cars:
      grown[car] = points, valid
      continue
    world, known = cars[car]
    new = valid & ~known
    if new.any():
      world = world.copy()
      world[new] = points[new]
      grown[car] = world, known | new
  if any(grown[car][1].sum() > (cars[car][1].sum() if car in cars else 0)
         for car in grown):
    shot_poses, focal, cars = _adjusted_scene(views, shots, shot_poses,
                                              grown, focal)
  shapes, similarities = dict(shapes), {}
  for car, (world, valid) in cars.items():
    reframed = _shape_in_basis_frame(world, valid, mean, components)
    if reframed is not None:
      shapes[car], similarities[car] = reframed
  adjusted = [None] * len(views)
  for index, view in enumerate(views):
    if shots[index] in shot_poses and view.car in similarities:
      rotation, translation = shot_poses[shots[index]]
      adjusted[index] = _reframed_pose(
          (cv2.Rodrigues(rotation)[0][:, 0], translation),
          similarities[view.car])
  return adjusted, focal, shapes


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
    rounds: rounds of each car's triangulation and PnP (first stage).

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
    if view.visible.sum() < MIN_PNP_POINTS:
      failures[index] = 'too_few_points'
      poses.append(None)
    else:
      # None when PnP fails: the view's shot may still be placed.
      poses.append(_pose(view, _intrinsics(focal[view.camera],
                                           view.image_size), mean, None))
  for _ in range(rounds):
    shapes, poses = _triangulate_cars(views, poses, focal, shapes, mean,
                                      components)
    poses = [None if pose is None else _pose(
        view, _intrinsics(focal[view.camera], view.image_size),
        shapes[view.car], pose) for view, pose in zip(views, poses)]
  adjusted, focal, shapes = _bundle_adjust(
      views, _shot_keys(views), poses, focal, shapes, mean, components)
  # Views that no placed shot covers (their car seen in one view, say)
  # keep their own pose, refitted at their camera's focal length.
  poses = [adjusted_pose if pose is None or adjusted_pose is not None else
           _pose(view, _intrinsics(focal[view.camera], view.image_size),
                 shapes[view.car], pose)
           for view, pose, adjusted_pose in zip(views, poses, adjusted)]
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
