"""Occlusion-Net losses (paper Eq. 11): keypoints, edges, decoder, reprojection.

The decoder (2D-KGNN, Eq. 7) is residual: it adds a displacement to the
heatmap graph. The paper supervises its occluded points with the trifocal
loss; its visible points must stay where the detector put them, so a
`visible` term anchors them to their labels (the issue's ablation "without
the trifocal loss" trains the decoder on visible points only). Without it
nothing constrains the visible outputs but the reprojection loss, and the
2D keypoints drift toward the untrained 3D branch's projection.

Every loss is a masked mean: padding views (`view_mask` False) contribute
exactly nothing to values and gradients, and a batch without any term gives
0, never NaN. Padding views carry zero boxes and cameras, so every array
derived from them is replaced by a harmless stand-in *before* any division
(`jnp.where` on the inputs, not only on the result), which keeps the
gradients of the masked terms at exactly zero instead of NaN.

Units: the keypoint and edge losses are cross-entropies; the reprojection
loss is in squared box coordinates; the visible and trifocal losses are in
squared fractions of the box scale L = max(width, height) of the view, so
equal weights weigh a visible and an occluded keypoint alike.
"""

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from occnet_jax import boxes as boxes_lib
from occnet_jax import geometry
from occnet_jax import labels
from occnet_jax.geometry import small_linalg
from occnet_jax.models import graphs
from occnet_jax.models import heatmap_head

VISIBLE = labels.Visibility.VISIBLE
# The terms of `total_loss`, in the order they are summed; each has its
# weight `config.loss.<term>`.
LOSS_TERMS = ('keypoints', 'edge', 'visible', 'trifocal', 'reproj')
# `config.loss.trifocal_mode`: see `trifocal_loss`.
TRIFOCAL_MODES = ('algebraic', 'geometric')
# Camera triples whose centres subtend less than this angle (collinear or
# coincident) have an ill-conditioned point transfer and are masked.
MIN_TRIFOCAL_ANGLE_DEGREES = 2.0
# Stand-in for invalid cameras: finite and well conditioned.
_STAND_IN_CAMERA = np.concatenate(
    [np.eye(3), [[0.0], [0.0], [10.0]]], axis=1).astype(np.float32)


def _masked_mean(values, mask):
  """Mean of `values` where `mask`; 0 when the mask is empty."""
  mask = jnp.broadcast_to(mask, values.shape)
  total = jnp.sum(jnp.where(mask, values, 0.0))
  return total / jnp.maximum(jnp.sum(mask), 1)


def safe_boxes(boxes, view_mask):
  """Boxes with padding or empty boxes replaced by the unit box."""
  valid = (view_mask & (boxes[..., 2] > boxes[..., 0])
           & (boxes[..., 3] > boxes[..., 1]))
  return jnp.where(valid[..., None], boxes, boxes_lib.UNIT_BOX)


def keypoint_loss(heatmaps, keypoints, visibility, boxes, view_mask,
                  supervise_occluded=False):
  """The t^2-way softmax cross-entropy of the heatmaps at labelled keypoints.

  The target spreads each labelled point bilinearly over its four nearest
  heatmap cells (`heatmap_head.heatmap_targets`), so the loss is minimal
  exactly when the decoded keypoint is the label, at sub-cell precision.

  Args:
    heatmaps: (N, K, H, W) logits.
    keypoints: (N, K, 2) labelled keypoints in pixels.
    visibility: (N, K) labels; 1 (visible) supervises.
    boxes: (N, 4) boxes in pixels.
    view_mask: (N,) False for padding views.
    supervise_occluded: True also supervises occluded (2) labels: the
      authors' release's loss, a fully supervised reference, not the
      paper's.

  Returns:
    The mean cross-entropy over supervised keypoints.
  """
  height, width = heatmaps.shape[-2:]
  targets = heatmap_head.heatmap_targets(
      boxes_lib.to_box_coordinates(keypoints, safe_boxes(boxes, view_mask)),
      height, width)
  log_probs = jax.nn.log_softmax(
      heatmaps.reshape(*heatmaps.shape[:-2], -1), axis=-1)
  cross_entropy = -jnp.sum(targets.reshape(log_probs.shape) * log_probs, -1)
  supervised = visibility == VISIBLE
  if supervise_occluded:
    supervised |= visibility == labels.Visibility.OCCLUDED
  return _masked_mean(cross_entropy, supervised & view_mask[:, None])


def _squared_relative_distance(predicted, target, boxes):
  """|predicted - target|^2 / L^2 of pixels (..., K, 2), L the box scale."""
  box_scale = boxes_lib.box_scale(boxes)[..., None]
  return jnp.sum((predicted - target)**2, -1) / box_scale**2


def visible_loss(keypoints_2d, keypoints, visibility, boxes, view_mask):
  """The decoder's error on labelled visible keypoints (anchors Eq. 7).

  The decoder adds a learnt displacement to every heatmap keypoint; the
  trifocal loss supervises only the occluded ones, so this term keeps the
  visible ones on their labels. It is the fixed-variance Gaussian of Eq. 8
  on the visible points, in the geometric trifocal loss's units.

  Args:
    keypoints_2d: (N, K, 2) decoder keypoints, box coordinates.
    keypoints: (N, K, 2) labelled keypoints, pixels.
    visibility: (N, K) labels; only 1 (visible) supervises.
    boxes: (N, 4) boxes in pixels.
    view_mask: (N,) False for padding views.

  Returns:
    The mean squared distance in fractions of the box scale.
  """
  boxes = safe_boxes(boxes, view_mask)
  squared = _squared_relative_distance(
      boxes_lib.from_box_coordinates(keypoints_2d, boxes), keypoints, boxes)
  return _masked_mean(squared, (visibility == VISIBLE) & view_mask[:, None])


def edge_labels(visibility):
  """E_ij = 1 iff keypoints i and j are both visible, (N, K) -> (N, E)."""
  senders, receivers = graphs.fully_connected_edges(visibility.shape[-1])
  visible = visibility == VISIBLE
  return (visible[..., senders] & visible[..., receivers]).astype(jnp.int32)


def edge_loss(edge_logits, visibility, view_mask):
  """Cross-entropy of the encoder's edge types (paper Eq. 5).

  Args:
    edge_logits: (N, E, 2) logits, edges as `graphs.fully_connected_edges`.
    visibility: (N, K) labels.
    view_mask: (N,) False for padding views.

  Returns:
    (mean cross-entropy, accuracy) over the edges of real views.
  """
  labels = edge_labels(visibility)
  cross_entropy = optax.softmax_cross_entropy_with_integer_labels(
      edge_logits, labels)
  correct = (jnp.argmax(edge_logits, -1) == labels).astype(jnp.float32)
  mask = view_mask[:, None]
  return _masked_mean(cross_entropy, mask), _masked_mean(correct, mask)


def reprojection_loss(reprojected, keypoints_2d, view_mask):
  """L_reproj (Eq. 10): sum_j ||pi(W_j) - V^g_j||^2, mean over real views.

  Gradients flow into both arguments: the paper trains end to end, and the
  3D shape prior is what feeds symmetry back into the 2D keypoints.
  `total_loss` can stop the one into `keypoints_2d`
  (`loss_config.reproj_trains_2d`).

  Args:
    reprojected: (N, K, 2) projected 3D keypoints, box coordinates.
    keypoints_2d: (N, K, 2) 2D-KGNN keypoints, box coordinates.
    view_mask: (N,) False for padding views.

  Returns:
    The loss.
  """
  squared = jnp.sum((reprojected - keypoints_2d)**2, axis=(-2, -1))
  return _masked_mean(squared, view_mask)


def _support_pairs(num_views):
  """(V, P, 2) view pairs (a, c), a < c, of the views other than each target."""
  return np.array(
      [[pair for pair in itertools.combinations(range(num_views), 2)
        if target not in pair] for target in range(num_views)],
      np.int32).reshape(num_views, -1, 2)


def _valid_cameras(cameras, view_mask):
  """(B, V) mask of finite cameras with a well-conditioned left 3x3 block."""
  finite = jnp.all(jnp.isfinite(cameras), axis=(-2, -1))
  left = jnp.where(finite[..., None, None], cameras[..., :3], 0.0)
  scale = jnp.sqrt(jnp.sum(left**2, axis=(-2, -1)) / 3.0)
  conditioned = (jnp.abs(small_linalg.det3(left))
                 > 1e-6 * jnp.maximum(scale, 1e-30)**3)
  return view_mask & finite & conditioned & (scale > 0)


def _sine_between(u, v):
  """|sin| of the angle between vectors (..., 3); 0 if one is zero."""
  cross = jnp.linalg.norm(jnp.cross(u, v), axis=-1)
  lengths = jnp.linalg.norm(u, axis=-1) * jnp.linalg.norm(v, axis=-1)
  return cross / jnp.maximum(lengths, 1e-12)


def _in_front_of_cameras(camera_a, camera_c, camera_target, x_a, x_c):
  """Whether the point seen at x_a, x_c lies in front of all three cameras.

  Args:
    camera_a: (..., 3, 4) first support camera.
    camera_c: (..., 3, 4) second support camera.
    camera_target: (..., 3, 4) target camera.
    x_a: (..., 2) pixels in view a.
    x_c: (..., 2) pixels in view c.

  Returns:
    (...,) bool; False also where the point cannot be triangulated.
  """
  point, in_front = geometry.triangulate(
      jnp.stack([camera_a, camera_c], axis=-3), jnp.stack([x_a, x_c], axis=-2),
      jnp.ones(x_a.shape[:-1] + (2,), x_a.dtype))
  for camera in (camera_a, camera_c, camera_target):
    _, depth = geometry.project(camera, point[..., None, :])
    in_front &= depth[..., 0] > 0
  return in_front


class TrifocalSupport(NamedTuple):
  """The support views of each (car, target view, keypoint) for Eq. 9.

  Leading axes (B, V, K): car, target view, keypoint. Where no pair is
  usable the fields hold the first pair's (or stand-in) values and `usable`
  is False.

  Attributes:
    camera_a: (B, V, K, 3, 4) camera of the first support view a.
    camera_target: (B, V, K, 3, 4) camera of the target view.
    camera_c: (B, V, K, 3, 4) camera of the second support view c.
    point_a: (B, V, K, 2) the keypoint's label in view a, pixels.
    point_c: (B, V, K, 2) the keypoint's label in view c, pixels.
    usable: (B, V, K) bool, a pair passed every test of `trifocal_supports`.
    supported: (B, V, K) bool, some pair of other real views with valid
      cameras sees the keypoint (before the geometry tests).
  """

  camera_a: jax.Array
  camera_target: jax.Array
  camera_c: jax.Array
  point_a: jax.Array
  point_c: jax.Array
  usable: jax.Array
  supported: jax.Array


def trifocal_supports(keypoints, visibility, cameras, view_mask):
  """Chooses the support pair of every keypoint of every view (needs V >= 3).

  Pair rule: the supports are two other views a, c of the same car in which
  the keypoint is visible; among the valid pairs, the one whose camera
  centres, seen from the car's origin, are closest to perpendicular
  (largest sine of the angle between them): the best-conditioned
  triangulation of the point. A pair is not valid when a camera of the
  triple is invalid (non-finite or singular; padding views have zero
  cameras), when the centres are coincident or collinear (angle at the
  target centre, or between the supports seen from the car, below
  MIN_TRIFOCAL_ANGLE_DEGREES), or when the point triangulated from a and c
  is behind one of the three cameras. The target view's own label is not
  read, so every keypoint gets a pair, visible or not.

  Args:
    keypoints: (B, V, K, 2) labelled keypoints, pixels.
    visibility: (B, V, K) labels; 1 = visible.
    cameras: (B, V, 3, 4) camera matrices, car object frame -> pixels.
    view_mask: (B, V) False for padding views.

  Returns:
    A `TrifocalSupport`.
  """
  num_views = keypoints.shape[1]
  camera_ok = _valid_cameras(cameras, view_mask)
  cameras = jnp.where(camera_ok[..., None, None], cameras, _STAND_IN_CAMERA)
  centres = geometry.camera_center(cameras)  # (B, V, 3)
  visible = (visibility == VISIBLE) & view_mask[..., None]

  pairs = _support_pairs(num_views)  # (V, P, 2)
  first, second = pairs[..., 0], pairs[..., 1]
  target = np.arange(num_views)[:, None]
  min_sine = np.sin(np.deg2rad(MIN_TRIFOCAL_ANGLE_DEGREES))
  pair_sine = _sine_between(centres[:, first], centres[:, second])  # (B,V,P)
  triple_ok = (
      camera_ok[:, first] & camera_ok[:, second] & camera_ok[:, target]
      & (pair_sine > min_sine)
      & (_sine_between(centres[:, first] - centres[:, target],
                       centres[:, second] - centres[:, target]) > min_sine))
  # (B, V, P, K): both supports see the keypoint, with valid cameras.
  supported = (visible[:, first] & visible[:, second]
               & (camera_ok[:, first] & camera_ok[:, second]
                  & camera_ok[:, target])[..., None])

  # Per (car, target view, pair, keypoint): the supports' points and cameras.
  keypoints_a, keypoints_c = keypoints[:, first], keypoints[:, second]
  camera_shape = keypoints_a.shape[:-1] + (3, 4)
  cameras_a = jnp.broadcast_to(cameras[:, first, None], camera_shape)
  cameras_c = jnp.broadcast_to(cameras[:, second, None], camera_shape)
  cameras_target = jnp.broadcast_to(cameras[:, :, None, None], camera_shape)
  in_front = _in_front_of_cameras(cameras_a, cameras_c, cameras_target,
                                  keypoints_a, keypoints_c)
  usable = supported & triple_ok[..., None] & in_front
  score = jnp.where(usable, pair_sine[..., None], -1.0)
  best = jnp.argmax(score, axis=2)  # (B, V, K)

  def choose(values):  # (B, V, P, K, ...) -> (B, V, K, ...) at `best`.
    index = jnp.expand_dims(best, (2,) + tuple(range(4, values.ndim)))
    return jnp.take_along_axis(values, index, axis=2)[:, :, 0]

  return TrifocalSupport(
      camera_a=choose(cameras_a), camera_target=cameras_target[:, :, 0],
      camera_c=choose(cameras_c), point_a=choose(keypoints_a),
      point_c=choose(keypoints_c), usable=choose(usable),
      supported=jnp.any(supported, axis=2))


def _transfer(support):
  """(pixels (B, V, K, 2), valid (B, V, K)): the supports' point transfer."""
  transferred, transfer_ok = geometry.normalized_trifocal_transfer(
      support.camera_a, support.camera_target, support.camera_c,
      support.point_a, support.point_c)
  return transferred, support.usable & transfer_ok


def trifocal_targets(keypoints, visibility, cameras, view_mask):
  """Where two other views say each keypoint is: the trifocal ground truth.

  The point transferred into each view from the labels of the support pair
  of `trifocal_supports` (the trifocal loss's rule), with
  `geometry.normalized_trifocal_transfer`. The geometric trifocal loss is
  the squared distance of the prediction to it, for non-visible keypoints.

  Args:
    keypoints, visibility, cameras, view_mask: as `trifocal_supports`.

  Returns:
    (targets, valid): (B, V, K, 2) transferred pixels (0 where not valid)
    and (B, V, K) bool, True where a usable pair exists and the transfer
    is defined. With fewer than 3 views nothing is valid.
  """
  if keypoints.shape[1] < 3:
    return jnp.zeros_like(keypoints), jnp.zeros(visibility.shape, bool)
  targets, valid = _transfer(
      trifocal_supports(keypoints, visibility, cameras, view_mask))
  return jnp.where(valid[..., None], targets, 0.0), valid


def trifocal_loss(keypoints_2d, keypoints, visibility, cameras, boxes,
                  view_mask, *, mode='algebraic'):
  """L_trifocal (Eq. 9) over a batch of cars seen in several views.

  For each view v of a car and each keypoint j not visible there, two other
  views a, c of the same car in which j is visible (`trifocal_supports`)
  give the trifocal tensor T(P_a, P_v, P_c), with the target view in the
  second slot as in Eq. 9.
  - 'algebraic': the incidence residual [x_v]_x (sum_i x_a^i T_i) [x_c]_x of
    `geometry.normalized_trifocal_residual` with the prediction as x_v, in
    focal lengths of view v (normalised by its growth per unit
    displacement), multiplied by f_v / L_v (focal length of view v over its
    box scale) so that it is measured in box scales like the geometric
    variant: to first order, the distance of the prediction from the
    transferred point over L_v.
  - 'geometric': the distance between the prediction and the point
    transferred from (x_a, x_c) (`trifocal_targets`), divided by the box
    scale L_v.
  Each term is squared (the fixed-variance Gaussian of Eq. 8), and the loss
  is their mean. A term is masked (degenerate) when no pair passes the
  tests of `trifocal_supports`, or (geometric) when the transfer is
  undefined.

  Args:
    keypoints_2d: (B, V, K, 2) predictions (2D-KGNN output), box coordinates.
    keypoints: (B, V, K, 2) labelled keypoints, pixels.
    visibility: (B, V, K) labels; 1 = visible.
    cameras: (B, V, 3, 4) camera matrices, car object frame -> pixels.
    boxes: (B, V, 4) boxes in pixels.
    view_mask: (B, V) False for padding views.
    mode: 'algebraic' or 'geometric'.

  Returns:
    (loss, terms) with terms `trifocal_terms` (number of active terms),
    `trifocal_masked_fraction` (fraction of the non-visible keypoints of
    real views without a term, for any reason) and
    `trifocal_degenerate_fraction` (of those, the fraction that had a pair of
    supporting views with valid cameras, all rejected by the geometry tests).
  """
  if mode not in TRIFOCAL_MODES:
    raise ValueError(f'trifocal mode {mode!r} not in {TRIFOCAL_MODES}.')
  candidates = view_mask[..., None] & (visibility != VISIBLE)
  num_candidates = jnp.maximum(jnp.sum(candidates), 1)
  if keypoints.shape[1] < 3:
    zero = jnp.zeros((), keypoints_2d.dtype)
    return zero, dict(trifocal_terms=jnp.zeros((), jnp.int32),
                      trifocal_masked_fraction=jnp.where(
                          jnp.any(candidates), 1.0, 0.0),
                      trifocal_degenerate_fraction=zero)

  boxes = safe_boxes(boxes, view_mask)
  support = trifocal_supports(keypoints, visibility, cameras, view_mask)
  active = candidates & support.usable
  predicted = boxes_lib.from_box_coordinates(keypoints_2d, boxes)

  if mode == 'algebraic':
    residual, residual_ok = geometry.normalized_trifocal_residual(
        support.camera_a, support.camera_target, support.camera_c,
        support.point_a, predicted, support.point_c)
    active &= residual_ok
    focal = 1.0 / geometry.normalizing_transform(
        support.camera_target)[..., 0, 0]
    box_scale = boxes_lib.box_scale(boxes)[..., None]  # (B, V, 1)
    squared = jnp.sum(residual**2, axis=(-2, -1)) * (focal / box_scale)**2
  else:
    transferred, transfer_ok = _transfer(support)
    active &= transfer_ok
    squared = _squared_relative_distance(predicted, transferred, boxes)

  num_active = jnp.sum(active)
  had_support = candidates & support.supported
  terms = dict(
      trifocal_terms=num_active,
      trifocal_masked_fraction=1.0 - num_active / num_candidates,
      trifocal_degenerate_fraction=(
          jnp.sum(had_support & ~active) / num_candidates))
  return _masked_mean(squared, active), terms


def total_loss(outputs, batch, loss_config: ml_collections.ConfigDict):
  """The weighted sum of Eq. 11's terms and the decoder's visible term.

  L = w_k L_keypoints + w_e L_edge + w_v L_visible + w_t L_trifocal
  + w_r L_reproj: the decoder is supervised on visible keypoints by their
  labels (`visible_loss`) and on occluded ones by the trifocal loss.

  Args:
    outputs: the model's outputs on the flattened views (N = B * V).
    batch: the batch dict, arrays with leading axes (B, V).
    loss_config: `config.loss`: a weight per term of `LOSS_TERMS`, the
      `trifocal_mode` (one of `TRIFOCAL_MODES`), `reproj_trains_2d`
      (False stops the reprojection loss's gradient into the 2D keypoints,
      so it trains the 3D branch only) and `keypoints_occluded` (True also
      supervises the heatmaps with occluded labels). In keypoints-in mode
      (no `heatmaps`) the keypoint term is 0.

  Returns:
    (loss, terms): the weighted sum and a dict of every unweighted term
    (by the names of `LOSS_TERMS`), the edge
    accuracy and the trifocal counts of `trifocal_loss`.
  """
  flat = graphs.views_to_nodes
  view_mask = flat(batch['view_mask'])
  visibility = flat(batch['visibility'])
  keypoints, boxes = flat(batch['keypoints']), flat(batch['boxes'])
  if 'heatmaps' in outputs:
    keypoints_term = keypoint_loss(outputs['heatmaps'], keypoints, visibility,
                                   boxes, view_mask,
                                   loss_config.keypoints_occluded)
  else:
    keypoints_term = jnp.zeros((), jnp.float32)
  edge_term, edge_accuracy = edge_loss(outputs['edge_logits'], visibility,
                                       view_mask)
  keypoints_2d = outputs['keypoints_2d']
  visible_term = visible_loss(keypoints_2d, keypoints, visibility, boxes,
                              view_mask)
  trifocal_term, trifocal_counts = trifocal_loss(
      keypoints_2d.reshape(batch['keypoints'].shape), batch['keypoints'],
      batch['visibility'], batch['cameras'], batch['boxes'],
      batch['view_mask'], mode=loss_config.trifocal_mode)
  reproj_term = reprojection_loss(
      outputs['reprojected'],
      keypoints_2d if loss_config.reproj_trains_2d
      else jax.lax.stop_gradient(keypoints_2d),
      view_mask)
  terms = dict(zip(LOSS_TERMS, (keypoints_term, edge_term, visible_term,
                               trifocal_term, reproj_term), strict=True))
  loss = sum(loss_config[name] * value for name, value in terms.items())
  terms.update(edge_accuracy=edge_accuracy, **trifocal_counts)
  return loss, terms
