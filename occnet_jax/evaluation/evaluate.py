"""Evaluation: PCK, occlusion ROC, robustness, multi-view correspondences.

Every view of every car of a split is evaluated on its own (single-view test
time). Methods (paper section 4): `heatmap` (the heatmap head's keypoints,
the MaskRCNN-style baseline), `kgnn2d` (2D-KGNN decoder) and `kgnn3d` (the
3D-KGNN keypoints projected into the view), and three baselines that fit the
PCA shape basis and a camera to a view (`shape_fit` module):
`shape_fit_confidence` (to the heatmap keypoints the heatmap's confidence
calls visible), `shape_fit_encoder` (to the heatmap keypoints the 2D-KGNN's
encoder calls visible, `config.eval.encoder_fit_threshold`) and `oracle_fit`
(to the true visible keypoints: the headroom, an upper reference). Ground
truth is the dataset's `true_keypoints`: exact positions for synthetic data,
the human labels for real CarFusion. Where the labels differ from them
(synthetic CarFusion written with annotator noise), PCK is also reported
against the labels, as a real benchmark would measure it.

The metrics' keys (`metric_keys` writes and parses them):
  - `pck.<method>.<subset>.<alpha>`: fraction of keypoints within alpha * L
    of the ground truth, L the longer side of the tight box of what is
    visible of the car, the record's box without its padding (the paper's;
    `cropping.pck_scale`). Subsets: `all`
    (labelled keypoints), `visible`, `occluded`, and `occluded_<n>`: the
    occluded keypoints of views with exactly n of K keypoints not visible
    (occluded or unlabelled), as the paper's "n/12 invisible points";
    `occluded_self`, `occluded_vehicle`, `occluded_object`: the occluded
    keypoints by `occlusion_kind` (Table 1's columns). An empty subset is
    null.
  - `pck_labels.<method>.<subset>.<alpha>`: the same against the labels
    (`keypoints`), only when some label differs from its true position.
  - `count.<subset>`: the number of keypoints in each of those subsets.
  - `occlusion_auc.heatmap`, `occlusion_auc.kgnn2d`: ROC AUC of telling
    occluded from visible keypoints by the negated heatmap confidence and by
    the 2D-KGNN encoder's occlusion score (null without both classes).
  - `robustness.<method>.<sigma>`: PCK@0.1 over all labelled keypoints when
    Gaussian noise of standard deviation sigma times the padded box's
    longer side (`boxes.box_scale`; per coordinate, pixels) is added to
    the heatmap keypoints fed to the graph networks in keypoints-in mode and
    to `shape_fit_confidence` (`heatmap` is the noisy input itself);
    `PERTURBED_METHODS` only, as for box jitter.
  - `pck_box_jitter.<method>.<sigma>` (`config.eval.box_jitter`): PCK@0.1
    over all labelled keypoints when every box is moved at random as a
    detector would err (`box_jitter`: centre shifts and log-scale changes of
    standard deviation sigma, in box sizes) and the crop is taken from the
    moved box; L stays that of the record's box.
  - `encoder_fit_sweep.<subset>.<threshold>` (`config.eval.
    encoder_fit_sweep`): PCK@0.1 of `shape_fit_encoder` at other
    thresholds, subsets `all`, `visible` and `occluded`: what the threshold
    is chosen by, on the validation split (docs/design.md, "Shape-fit
    baselines").
  - `gate_sweep.<subset>.<threshold>` (`config.eval.decoder_gate_sweep`,
    hard-gated models only): PCK@0.1 of the 2D-KGNN with its gate opening
    only above a threshold at or above the model's (`gated_higher`),
    subsets `all`, `visible` and `occluded`: the operating points between
    moving occluded keypoints and leaving visible ones alone
    (docs/design.md, "The decoder gate").
  - `gate_open.<subset>` (hard-gated models only): the fraction of the
    `visible` or `occluded` keypoints whose gate the model opened (on
    visible ones, the encoder's mistakes); `gate_open_pck.<method>.<subset>`:
    PCK@0.1 of `heatmap` and `kgnn2d` on those keypoints, so the visible
    keypoints the gate opened show what the decoder's moves of them cost.
  - `multiview.<method>.<n>` (paper Fig. 4 right): mean number of multi-view
    correspondences per n-view subset of a car's views (n in
    `multiview.VIEW_COUNTS`, up to `multiview.MAX_SUBSETS` subsets per car):
    per keypoint, the views within alpha = 0.1 of the reprojection of the
    best point triangulated from two of the subset's views, if at least 2
    (`multiview` module docstring). Only labelled keypoints take part.
    Methods: `METHODS` and `labels` (the true keypoints, the upper
    bound: every labelled keypoint seen in 2 or more views of the subset on
    exact cameras). `multiview_fraction.<method>.<n>`: the same divided by
    K * n. `multiview_subsets.<n>`: the number of subsets (0, and the means
    null, when no car has n views).
  - `yaw_error.<method>.median_deg`, `yaw_error.<method>.within_30deg`
    (Table 1; `YAW_METHODS`): the median absolute error in degrees, and the
    fraction within 30 degrees, of the predicted camera's yaw about the car
    (`geometry.viewing_yaw` of its centre) against the true camera's, over
    the views whose true camera is known (`camera_error` 0: rendered or
    calibrated, not PnP-estimated). Null without such views.
  - `<key>_ci` for every `pck`, `pck_labels`, `robustness`, `pck_box_jitter`,
    `encoder_fit_sweep`, `gate_sweep`, `occlusion_auc` and `yaw_error`
    figure: its 95% percentile bootstrap interval [low, high] over
    `bootstrap.NUM_RESAMPLES` seeded resamples of the split's physical cars
    (`labels.physical_car`: on CarFusion the sequence's instance over all
    its frames; `bootstrap` module), null where the figure is.
  - `num_instances` (evaluated views, i.e. car instances in images),
    `num_cars` (physical cars), `step`.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

from occnet_jax import boxes as boxes_lib
from occnet_jax import geometry
from occnet_jax import input_pipeline
from occnet_jax import keypoints as keypoints_lib
from occnet_jax import labels
from occnet_jax.evaluation import bootstrap
from occnet_jax.evaluation import box_jitter as box_jitter_lib
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import multiview
from occnet_jax.evaluation import scores as scores_lib
from occnet_jax.evaluation import shape_fit
from occnet_jax.models import graphs
from occnet_jax.models import occlusion_net

NETWORK_METHODS = ('heatmap', 'kgnn2d', 'kgnn3d')
# The classical answers a claim of beating the shape fit compares with.
SHAPE_FIT_METHODS = ('shape_fit_confidence', 'shape_fit_encoder')
BASELINE_METHODS = SHAPE_FIT_METHODS + ('oracle_fit',)
METHODS = NETWORK_METHODS + BASELINE_METHODS
# Methods scored under input noise and box jitter: `oracle_fit` reads the
# true keypoints, not the model's; `shape_fit_encoder` is left out, as no
# claim reads it there and each level would cost one more batch of fits.
PERTURBED_METHODS = NETWORK_METHODS + ('shape_fit_confidence',)
# The prediction of the encoder fit at each threshold of
# `config.eval.encoder_fit_sweep` (`predict_views`), scored as
# `encoder_fit_sweep.*` over these subsets, as the raised decoder gates of
# `gate_sweep.*` are.
ENCODER_SWEEP = 'sweep.shape_fit_encoder'
SWEEP_SUBSETS = ('all', 'visible', 'occluded')
# `gate_open*`: where a hard gate opened, by the keypoint's true state
# (opened on a visible one is the encoder's mistake), and the two methods
# between which the gate chooses.
GATE_OPEN_SUBSETS = ('visible', 'occluded')
GATE_OPEN_METHODS = ('heatmap', 'kgnn2d')
# `labels`: the ground-truth keypoints, the multi-view upper bound.
MULTIVIEW_METHODS = METHODS + ('labels',)
METHOD_OUTPUTS = {'heatmap': 'initial_keypoints', 'kgnn2d': 'keypoints_2d',
                  'kgnn3d': 'reprojected'}
OCCLUSION_METHODS = ('heatmap', 'kgnn2d')
# Methods with a camera, scored by yaw error.
YAW_METHODS = ('kgnn3d',) + BASELINE_METHODS
# Subsets of occluded keypoints by why they are hidden.
OCCLUSION_KIND_SUBSETS = {
    'occluded_self': labels.OcclusionKind.SELF,
    'occluded_vehicle': labels.OcclusionKind.OTHER_VEHICLE,
    'occluded_object': labels.OcclusionKind.OTHER_OBJECT}
YAW_TOLERANCE_DEG = 30.0
ROBUSTNESS_ALPHA = 0.1
VISIBLE = labels.Visibility.VISIBLE
OCCLUDED = labels.Visibility.OCCLUDED
_AXIS = input_pipeline.DEVICE_AXIS


def predict_views(variables: Any, crops: jax.Array, boxes: jax.Array,
                  visible_keypoints: jax.Array, rng: jax.Array, *,
                  model: nn.Module, noise_sigmas: Sequence[float],
                  encoder_fit_threshold: float,
                  box_jitter: Sequence[float] = (),
                  encoder_fit_sweep: Sequence[float] = ()
                  ) -> dict[str, jax.Array]:
  """Every method's keypoints (pixels) and occlusion scores for N views.

  Args:
    variables: the model's variables.
    crops: (N, S, S, 3) uint8 crops.
    boxes: (N, 4) boxes in pixels.
    visible_keypoints: (N, K, 2) the true keypoints (pixels) where visible
      and NaN elsewhere: `oracle_fit`'s input, no network's.
    rng: key of the robustness noise and the box jitter.
    model: the model (an `OcclusionNet`; its shape basis is the fits').
    noise_sigmas: robustness noise levels, fractions of the box scale.
    encoder_fit_threshold: `shape_fit_encoder` trusts the keypoints whose
      encoder occlusion score is at most this (`shape_fit.called_visible`).
    box_jitter: box-jitter levels (`box_jitter.jitter_boxes`).
    encoder_fit_sweep: further thresholds of `ENCODER_SWEEP`.

  Returns:
    `METHODS`: (N, K, 2) pixels; `occlusion.heatmap`, `occlusion.kgnn2d`:
    (N, K) scores, higher = more likely occluded; `yaw.<method>`
    (`YAW_METHODS`): (N,) the predicted camera's yaw; `keypoints_3d`,
    `occlusion_score` and the 3D camera for prediction;
    `noisy.<method>`: (len(noise_sigmas), N, K, 2) under input noise;
    `jitter.<method>`: (len(box_jitter), N, K, 2) from moved boxes (absent
    without levels), both for `PERTURBED_METHODS`; `ENCODER_SWEEP`:
    (len(encoder_fit_sweep), N, K, 2) (absent without thresholds).
  """
  noise_rng, jitter_rng = jax.random.split(rng)
  outputs = model.apply(variables, crops, boxes, train=False)
  result = {method: boxes_lib.from_box_coordinates(outputs[key], boxes)
            for method, key in METHOD_OUTPUTS.items()}
  result['occlusion.heatmap'] = -outputs['confidence']
  result['occlusion.kgnn2d'] = outputs['occlusion_score']
  result['yaw.kgnn3d'] = geometry.viewing_yaw(geometry.pose_center(
      outputs['quaternion'], outputs['translation']))
  for key in ('keypoints_3d', 'occlusion_score', 'focal', 'quaternion',
              'translation', 'confidence'):
    result[key] = outputs[key]
  # Every shape fit of the call, (box-coordinate keypoints, weights, boxes)
  # per level, runs as one batch: clean heatmap keypoints selected by the
  # confidence and by the encoder at each threshold (the configured one
  # first), noisy and jittered ones, then the true visible ones.
  heatmap_weights = shape_fit.confident(outputs['confidence'])
  thresholds = (encoder_fit_threshold,) + tuple(encoder_fit_sweep)
  fits = [(outputs['initial_keypoints'], heatmap_weights, boxes)] + [
      (outputs['initial_keypoints'], shape_fit.called_visible(
          outputs['occlusion_score'], threshold), boxes)
      for threshold in thresholds]

  scale = boxes_lib.box_scale(boxes)[:, None, None]
  box_size = (boxes[:, 2:] - boxes[:, :2])[:, None, :]
  noisy = {method: [] for method in NETWORK_METHODS}
  for index, sigma in enumerate(noise_sigmas):
    noise = sigma * scale * jax.random.normal(
        jax.random.fold_in(noise_rng, index), result['heatmap'].shape)
    # Pixels -> box coordinates: the box spans 2 units per axis.
    inputs = outputs['initial_keypoints'] + 2.0 * noise / box_size
    noisy_outputs = model.apply(variables, None, boxes, train=False,
                                keypoints=inputs,
                                confidence=outputs['confidence'])
    noisy['heatmap'].append(result['heatmap'] + noise)
    for method in ('kgnn2d', 'kgnn3d'):
      noisy[method].append(boxes_lib.from_box_coordinates(
          noisy_outputs[METHOD_OUTPUTS[method]], boxes))
    fits.append((inputs, heatmap_weights, boxes))

  jittered = {method: [] for method in NETWORK_METHODS}
  for index, sigma in enumerate(box_jitter):
    moved = box_jitter_lib.jitter_boxes(
        boxes, jax.random.fold_in(jitter_rng, index), sigma)
    moved_outputs = model.apply(
        variables, box_jitter_lib.recrop(crops, boxes, moved), moved,
        train=False)
    for method, values in jittered.items():
      values.append(boxes_lib.from_box_coordinates(
          moved_outputs[METHOD_OUTPUTS[method]], moved))
    fits.append((moved_outputs['initial_keypoints'],
                 shape_fit.confident(moved_outputs['confidence']), moved))

  visible = jnp.all(jnp.isfinite(visible_keypoints), axis=-1)
  fits.append((boxes_lib.to_box_coordinates(
      jnp.where(visible[..., None], visible_keypoints, 0.0), boxes),
               visible, boxes))
  fit_boxes = jnp.concatenate([b for _, _, b in fits])
  fitted = shape_fit.fit(
      model.shape_basis, jnp.concatenate([k for k, _, _ in fits]),
      jnp.concatenate([w for _, w, _ in fits]).astype(jnp.float32),
      occlusion_net.box_aspect(fit_boxes))
  levels = boxes_lib.from_box_coordinates(fitted.keypoints, fit_boxes).reshape(
      (len(fits),) + result['heatmap'].shape)
  yaws = shape_fit.yaw(fitted).reshape(len(fits), -1)
  for method, index in (('shape_fit_confidence', 0),
                        ('shape_fit_encoder', 1), ('oracle_fit', -1)):
    result[method], result[f'yaw.{method}'] = levels[index], yaws[index]
  if encoder_fit_sweep:
    result[ENCODER_SWEEP] = levels[2:1 + len(thresholds)]
  first_noisy = 1 + len(thresholds)
  noisy['shape_fit_confidence'] = list(
      levels[first_noisy:first_noisy + len(noise_sigmas)])
  jittered['shape_fit_confidence'] = list(
      levels[first_noisy + len(noise_sigmas):-1])
  for method, values in noisy.items():
    result[f'noisy.{method}'] = jnp.stack(values)
  for method, values in jittered.items():
    if values:
      result[f'jitter.{method}'] = jnp.stack(values)
  return result


def gated_higher(kgnn2d: np.ndarray, heatmap: np.ndarray, scores: np.ndarray,
                 threshold: float) -> np.ndarray:
  """The 2D-KGNN's keypoints had its hard gate opened only above `threshold`.

  Exact for a threshold at or above the model's: a keypoint the raised gate
  keeps open was open in the model too and moved by its whole displacement
  (`kgnn2d`), and one it shuts stays at its input, the heatmap's keypoint.

  Args:
    kgnn2d: (M, K, 2) the hard-gated 2D-KGNN's keypoints.
    heatmap: (M, K, 2) its input keypoints.
    scores: (M, K) the encoder's occlusion scores.
    threshold: the raised gate opens above it.

  Returns:
    (M, K, 2) keypoints.
  """
  return np.where((scores > threshold)[..., None], kgnn2d, heatmap)


def hard_gate_threshold(config: ml_collections.ConfigDict) -> float | None:
  """The model's hard-gate threshold; None for another gate or none."""
  if config.model.get('decoder_gate', 'none') != 'hard':
    return None
  return float(config.model.decoder_gate_threshold)


def decoder_gate_sweep(config: ml_collections.ConfigDict) -> tuple[float, ...]:
  """The thresholds of `gate_sweep.*` for a model's config.

  Those of `eval.decoder_gate_sweep` for a hard gate (`configs.validate`
  keeps them above the model's threshold); none for the soft gate or the
  ungated decoder, whose keypoints no raised threshold can be read from.
  """
  if hard_gate_threshold(config) is None:
    return ()
  return tuple(config.eval.decoder_gate_sweep)


def _per_level(key: str) -> bool:
  """Whether a prediction has a leading axis of noise, jitter or sweep levels.
  """
  return key.startswith(('noisy.', 'jitter.', 'sweep.'))


def make_predict_fn(model: nn.Module, eval_config: ml_collections.ConfigDict,
                    mesh: jax.sharding.Mesh):
  """`predict_views` on (B, V) batches, data parallel over `mesh`, jitted.

  `eval_config` is `config.eval`: its `noise_sigmas` and `box_jitter` set the
  perturbed predictions, `encoder_fit_threshold` and `encoder_fit_sweep`
  the encoder-selected shape fits.

  Returns:
    fn(variables, crops, boxes, visible_keypoints, rng) with crops
    (B, V, S, S, 3), boxes (B, V, 4) and visible_keypoints (B, V, K, 2)
    (`predict_views`) global arrays sharded over the mesh; outputs have
    leading axes (B * V) (noisy and jittered ones (levels, B * V)).
  """

  def per_device(variables, crops, boxes, visible_keypoints, rng):
    rng = jax.random.fold_in(rng, jax.lax.axis_index(_AXIS))
    crops, boxes = input_pipeline.flatten_views(
        {'crops': crops, 'boxes': boxes})
    visible_keypoints = graphs.views_to_nodes(visible_keypoints)
    return predict_views(variables, crops, boxes, visible_keypoints, rng,
                         model=model,
                         noise_sigmas=tuple(eval_config.noise_sigmas),
                         box_jitter=tuple(eval_config.box_jitter),
                         encoder_fit_threshold=(
                             eval_config.encoder_fit_threshold),
                         encoder_fit_sweep=tuple(
                             eval_config.encoder_fit_sweep))

  sharded, replicated = jax.P(_AXIS), jax.P()
  out_specs = {key: (jax.P(None, _AXIS) if _per_level(key) else sharded)
               for key in _prediction_keys(bool(eval_config.box_jitter),
                                           bool(eval_config.encoder_fit_sweep))}
  return jax.jit(jax.shard_map(
      per_device, mesh=mesh,
      in_specs=(replicated, sharded, sharded, sharded, replicated),
      out_specs=out_specs))


def _prediction_keys(box_jitter: bool, sweep: bool) -> tuple[str, ...]:
  return METHODS + tuple(f'occlusion.{m}' for m in OCCLUSION_METHODS) + (
      tuple(f'yaw.{m}' for m in YAW_METHODS)) + (
          'keypoints_3d', 'occlusion_score', 'focal', 'quaternion',
          'translation', 'confidence') + tuple(
              f'noisy.{m}' for m in PERTURBED_METHODS) + (
                  tuple(f'jitter.{m}' for m in PERTURBED_METHODS)
                  if box_jitter else ()) + ((ENCODER_SWEEP,) if sweep else ())


def oracle_inputs(batch: Mapping[str, np.ndarray]) -> np.ndarray:
  """`oracle_fit`'s input: the true keypoints where visible, NaN elsewhere."""
  return np.where((batch['visibility'] == VISIBLE)[..., None],
                  batch['true_keypoints'], np.nan).astype(np.float32)


def collect_predictions(config: ml_collections.ConfigDict,
                        predict_fn: Callable[..., dict[str, jax.Array]],
                        variables: Any, source: Sequence[Mapping[str, Any]],
                        mesh: jax.sharding.Mesh, *, max_instances: int,
                        num_gallery: int = 0) -> dict[str, np.ndarray]:
  """Runs the model over a split; host arrays over its real views.

  Args:
    config: the experiment config (`data.num_views`, `eval.*`, `seed`).
    predict_fn: `make_predict_fn(model, config.eval, mesh)`, made once per
      run so that it compiles once.
    variables: the model's variables (replicated on `mesh`).
    source: random-access records of the split.
    mesh: the devices to run on (axis 'data').
    max_instances: evaluate at most this many cars (0 = all).
    num_gallery: keep the crops of this many first views.

  Returns:
    Per view (M real views): every `predict_views` output (noisy and
    jittered ones with the level axis first), `keypoints`, `true_keypoints`,
    `visibility`, `occlusion_kind`, `boxes`, `cameras`, `camera_error`,
    `car_id`, and `crops` of the first `num_gallery` views.
  """
  sharding = jax.NamedSharding(mesh, jax.P(_AXIS))
  local = input_pipeline.local_batch_size(config.eval.batch_size)
  offset = jax.process_index() * local
  chunks = []
  rng = jax.random.key(config.seed)
  for index, (batch, car_ids) in enumerate(input_pipeline.eval_batches(
      source, config.data.num_views, config.eval.batch_size, max_instances)):
    crops, boxes, visible_keypoints = (
        jax.make_array_from_process_local_data(
            sharding, inputs[offset:offset + local])
        for inputs in (batch['crops'], batch['boxes'],
                       oracle_inputs(batch)))
    outputs = predict_fn(variables, crops, boxes, visible_keypoints,
                         jax.random.fold_in(rng, index))
    outputs = multihost_utils.process_allgather(outputs, tiled=True)
    valid = batch['view_mask'].reshape(-1)
    chunk = {key: (np.asarray(value)[:, valid] if _per_level(key)
                   else np.asarray(value)[valid])
             for key, value in outputs.items()}
    for name in input_pipeline.VIEW_FIELDS:
      chunk[name] = graphs.views_to_nodes(batch[name])[valid]
    chunk['car_id'] = np.repeat(np.array(car_ids), config.data.num_views)[valid]
    if sum(len(c['car_id']) for c in chunks) >= num_gallery:
      del chunk['crops']
    chunks.append(chunk)
  if not chunks:
    raise ValueError('The evaluation split is empty.')
  predictions = {}
  for key in chunks[0]:
    if key == 'crops':
      crops = [c['crops'] for c in chunks if 'crops' in c]
      predictions[key] = np.concatenate(crops)[:num_gallery]
    else:
      axis = 1 if _per_level(key) else 0
      predictions[key] = np.concatenate([c[key] for c in chunks], axis=axis)
  return predictions


def compute_metrics(predictions: Mapping[str, np.ndarray],
                    alphas: Sequence[float],
                    noise_sigmas: Sequence[float],
                    box_jitter: Sequence[float] = (),
                    encoder_fit_sweep: Sequence[float] = (),
                    decoder_gate_sweep: Sequence[float] = (),
                    decoder_gate_threshold: float | None = None, *,
                    num_resamples: int = bootstrap.NUM_RESAMPLES,
                    seed: int = 0,
                    methods: Sequence[str] = METHODS) -> dict[str, Any]:
  """The metrics' values (module docstring) from `collect_predictions`.

  Each method's occlusion AUC, robustness, box-jitter and yaw figures are
  computed where the predictions hold its `occlusion.`, `noisy.`,
  `jitter.` and `yaw.` arrays, so that other methods' predictions (a COCO
  results file's, `evaluation.score_coco`) are scored by this same code.

  Args:
    predictions: per-view host arrays.
    alphas: PCK thresholds.
    noise_sigmas: the robustness noise levels of the predictions.
    box_jitter: the box-jitter levels of the predictions.
    encoder_fit_sweep: the thresholds of the predictions' `ENCODER_SWEEP`.
    decoder_gate_sweep: the raised gates' thresholds of `gate_sweep.*`
      (`decoder_gate_sweep`), each at or above the model's.
    decoder_gate_threshold: the model's hard-gate threshold
      (`hard_gate_threshold`), for `gate_open*`; None: no such figures.
    num_resamples: bootstrap resamples of the cars.
    seed: the resamples' seed.
    methods: the methods whose (M, K, 2) keypoints `predictions` holds.

  Returns:
    A flat dict of floats (None for empty subsets) and [low, high]
    intervals.
  """
  visibility = predictions['visibility']
  target, view_boxes = predictions['true_keypoints'], predictions['boxes']
  noisy_labels = not np.array_equal(predictions['keypoints'], target)
  num_keypoints = visibility.shape[-1]
  invisible = np.sum(visibility != VISIBLE, axis=-1)[:, None]
  occluded = visibility == OCCLUDED
  subsets = {'all': visibility > 0, 'visible': visibility == VISIBLE,
             'occluded': occluded}
  for level in keypoints_lib.occlusion_levels(num_keypoints):
    subsets[f'occluded_{level}'] = occluded & (invisible == level)
  for subset, kind in OCCLUSION_KIND_SUBSETS.items():
    subsets[subset] = occluded & (predictions['occlusion_kind'] == kind)
  # A record is one car at one frame (CarFusion): the frames of a car are
  # not independent draws, the car is.
  cars = np.array([labels.physical_car(car) for car in predictions['car_id']])
  weights = bootstrap.resample_weights(cars, num_resamples, seed)
  results = {}

  def record(key, value, interval):
    results[key] = value
    results[metric_keys.interval(key)] = interval

  def pck(predicted, mask, alphas, truth=target):
    """PCK per alpha (None if the mask is empty) and its intervals."""
    hits, totals = (np.asarray(counts) for counts in scores_lib.pck_hits(
        predicted, truth, view_boxes, mask, alphas))
    total = int(totals.sum())
    values = [int(c) / total if total else None for c in hits.sum(0)]
    return zip(values, bootstrap.ratio_interval(weights, hits, totals))

  for subset, mask in subsets.items():
    results[metric_keys.count(subset)] = int(np.sum(mask))
  for method in methods:
    for subset, mask in subsets.items():
      for alpha, figure in zip(alphas, pck(predictions[method], mask,
                                           alphas)):
        record(metric_keys.pck(method, subset, alpha), *figure)
      if noisy_labels:
        for alpha, figure in zip(alphas, pck(predictions[method], mask, alphas,
                                             predictions['keypoints'])):
          record(metric_keys.label_pck(method, subset, alpha), *figure)
  labelled = visibility > 0
  keypoint_views = np.nonzero(labelled)[0]
  for method in _holding(predictions, 'occlusion', methods):
    scores = predictions[f'occlusion.{method}'][labelled]
    roc = scores_lib.occlusion_roc(scores, occluded[labelled])
    record(metric_keys.occlusion_auc(method),
           roc.auc if roc.is_defined else None,
           bootstrap.auc_interval(weights, keypoint_views, scores,
                                  occluded[labelled])
           if roc.is_defined else None)
  for method in _holding(predictions, 'noisy', methods):
    for sigma, noisy in zip(noise_sigmas, predictions[f'noisy.{method}']):
      record(metric_keys.robustness(method, sigma),
             *next(pck(noisy, labelled, [ROBUSTNESS_ALPHA])))
    for sigma, moved in zip(box_jitter,
                            predictions.get(f'jitter.{method}', ())):
      record(metric_keys.box_jitter(method, sigma),
             *next(pck(moved, labelled, [ROBUSTNESS_ALPHA])))
  for threshold, fitted in zip(encoder_fit_sweep,
                               predictions.get(ENCODER_SWEEP, ())):
    for subset in SWEEP_SUBSETS:
      record(metric_keys.encoder_fit_sweep(subset, threshold),
             *next(pck(fitted, subsets[subset], [ROBUSTNESS_ALPHA])))
  for threshold in decoder_gate_sweep:
    gated = gated_higher(predictions['kgnn2d'], predictions['heatmap'],
                         predictions['occlusion.kgnn2d'], threshold)
    for subset in SWEEP_SUBSETS:
      record(metric_keys.gate_sweep(subset, threshold),
             *next(pck(gated, subsets[subset], [ROBUSTNESS_ALPHA])))
  if decoder_gate_threshold is not None:
    opened = predictions['occlusion.kgnn2d'] > decoder_gate_threshold
    for subset in GATE_OPEN_SUBSETS:
      mask = subsets[subset]
      hits, totals = np.sum(mask & opened, -1), np.sum(mask, -1)
      total = int(totals.sum())
      record(metric_keys.gate_open(subset),
             int(hits.sum()) / total if total else None,
             bootstrap.ratio_interval(weights, hits[:, None], totals)[0])
      for method in GATE_OPEN_METHODS:
        record(metric_keys.gate_open_pck(method, subset),
               *next(pck(predictions[method], mask & opened,
                         [ROBUSTNESS_ALPHA])))
  _yaw_metrics(predictions, weights, record,
               _holding(predictions, 'yaw', methods))
  for method in tuple(methods) + ('labels',):
    counts = multiview.correspondence_counts(
        predictions['true_keypoints' if method == 'labels' else method],
        predictions['cameras'], view_boxes, predictions['car_id'], labelled)
    for n, count in counts.items():
      results[metric_keys.multiview(method, n)] = count.mean_count
      results[metric_keys.multiview(method, n, fraction=True)] = (
          count.mean_fraction)
      results[metric_keys.multiview_subsets(n)] = count.num_subsets
  results['num_instances'] = int(len(visibility))
  results['num_cars'] = int(len(np.unique(cars)))
  return results


def yaw_errors(predicted: np.ndarray, cameras: np.ndarray) -> np.ndarray:
  """Absolute yaw errors in degrees, in [0, 180].

  Args:
    predicted: (M,) predicted yaws (radians, `geometry.viewing_yaw`).
    cameras: (M, 3, 4) the true cameras, object frame -> pixels.

  Returns:
    (M,) degrees.
  """
  centers = np.asarray(geometry.camera_center(np.asarray(cameras,
                                                         np.float64)))
  difference = np.asarray(predicted, np.float64) - np.asarray(
      geometry.viewing_yaw(centers))
  return np.degrees(np.abs(np.angle(np.exp(1j * difference))))


def _holding(predictions: Mapping[str, Any], prefix: str,
             methods: Sequence[str]) -> list[str]:
  """The methods whose `<prefix>.<method>` predictions exist."""
  return [method for method in methods
          if f'{prefix}.{method}' in predictions]


def _yaw_metrics(predictions, weights, record, methods):
  """`yaw_error.*` over the views with a known, finite true camera."""
  cameras = predictions['cameras']
  known = (predictions['camera_error'] == 0) & (
      np.abs(np.linalg.det(cameras[:, :, :3].astype(np.float64))) > 0)
  views = np.nonzero(known)[0]
  for method in methods:
    errors = yaw_errors(predictions[f'yaw.{method}'][known], cameras[known])
    within = np.zeros(len(known))
    within[views] = errors <= YAW_TOLERANCE_DEG
    record(metric_keys.yaw_error(method, metric_keys.MEDIAN_DEG),
           float(np.median(errors)) if len(errors) else None,
           bootstrap.median_interval(weights, views, errors))
    record(metric_keys.yaw_error(method, metric_keys.WITHIN_30DEG),
           float(np.mean(errors <= YAW_TOLERANCE_DEG)) if len(errors)
           else None, bootstrap.ratio_interval(weights, within, known))


def evaluate_variables(config: ml_collections.ConfigDict,
                       predict_fn: Callable[..., dict[str, jax.Array]],
                       variables: Any, source: Sequence[Mapping[str, Any]],
                       mesh: jax.sharding.Mesh, *, max_instances: int,
                       num_gallery: int = 0,
                       ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """Metrics (and predictions) of a model's variables on a split.

  Args:
    config: the experiment config.
    predict_fn: see `collect_predictions`.
    variables: the model's variables ('params' and any other collection),
      replicated on `mesh`.
    source: random-access records of the split.
    mesh: the devices to run on.
    max_instances: evaluate at most this many cars (0 = all).
    num_gallery: keep this many crops for the gallery.

  Returns:
    (metrics, predictions).
  """
  predictions = collect_predictions(
      config, predict_fn, variables, source, mesh, max_instances=max_instances,
      num_gallery=num_gallery)
  return compute_metrics(predictions, config.eval.alphas,
                         config.eval.noise_sigmas, config.eval.box_jitter,
                         config.eval.encoder_fit_sweep,
                         decoder_gate_sweep(config),
                         hard_gate_threshold(config)), predictions


def summary_scalars(results: Mapping[str, Any]) -> dict[str, float]:
  """Headline numbers (TensorBoard-safe names): PCK@0.1 and AUCs."""
  scalars = {}
  for method in METHODS:
    for subset in ('all', 'visible', 'occluded'):
      value = results.get(metric_keys.pck(method, subset, 0.1))
      if value is not None:
        scalars[f'{method}_pck_{subset}_alpha0.1'] = value
  for method in OCCLUSION_METHODS:
    auc = results[metric_keys.occlusion_auc(method)]
    if auc is not None:
      scalars[f'{method}_occlusion_auc'] = auc
  return scalars


def format_summary(results: Mapping[str, Any]) -> str:
  """A one-screen table: PCK@0.1 visible/occluded per method and AUCs."""

  def percent(value):
    return '   n/a' if value is None else f'{100 * value:6.1f}'

  def pck(method, subset):
    return results[metric_keys.pck(method, subset, 0.1)]

  lines = [f'{results["num_instances"]} views of {results["num_cars"]} cars'
           f' (step {results.get("step", "?")})',
           f'{"PCK@0.1 (%)":<12}{"all":>8}{"visible":>9}{"occluded":>10}'
           f'{"occ. AUC":>10}']
  for method in METHODS:
    auc = results.get(metric_keys.occlusion_auc(method))
    lines.append(
        f'{method:<12}{percent(pck(method, "all")):>8}'
        f'{percent(pck(method, "visible")):>9}'
        f'{percent(pck(method, "occluded")):>10}'
        f'{"" if auc is None else f"{auc:.3f}":>10}')
  return '\n'.join(lines)
