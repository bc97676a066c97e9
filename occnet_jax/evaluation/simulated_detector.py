"""The graph networks fed by a simulated detector instead of the heatmap.

A model trained on synthetic sets has a heatmap head for synthetic images;
on photographs the graph networks take a real detector's keypoints
(keypoints-in mode, README "Using your own detector"). This measures how
they fare on such input: a detector simulated from the true VISIBLE
keypoints of each view, each moved by Gaussian noise of standard deviation
`sigma` * L per coordinate (L, the PCK scale: `cropping.pck_scale`) and
dropped with probability `drop_rate`. A kept keypoint has confidence 1; a
dropped or occluded one confidence 0 at the box's centre, so no input
depends on where an occluded keypoint is.

Methods written beside evaluation's (`evaluate.METHODS`), same keys:
`detector` (the simulated keypoints themselves), `detector_kgnn2d` and
`detector_kgnn3d` (the 2D-KGNN and 3D-KGNN on them).
"""

from collections.abc import Mapping
import os
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from occnet_jax import boxes as boxes_lib
from occnet_jax import cropping
from occnet_jax import labels
from occnet_jax import workdir as workdir_lib
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import outputs
from occnet_jax.evaluation import workdir_evaluation

DETECTOR = 'detector'
# method -> the model output it reads, in keypoints-in mode.
GRAPH_METHODS = {'detector_kgnn2d': 'keypoints_2d',
                 'detector_kgnn3d': 'reprojected'}
METHODS = (DETECTOR,) + tuple(GRAPH_METHODS)
DEFAULT_SIGMA = 0.02
DEFAULT_DROP_RATE = 0.1
DIRECTORY = 'simulated_detector'


def simulate(true_keypoints: np.ndarray, visibility: np.ndarray,
             boxes: np.ndarray, rng: np.random.Generator, *, sigma: float,
             drop_rate: float) -> tuple[np.ndarray, np.ndarray]:
  """A detector's keypoints from the true visible ones (module docstring).

  Args:
    true_keypoints: (M, K, 2) pixels; only the visible ones are read.
    visibility: (M, K) `labels.Visibility` codes.
    boxes: (M, 4) boxes in pixels.
    rng: the noise and drops.
    sigma: noise standard deviation, a fraction of L.
    drop_rate: probability that a visible keypoint is missed.

  Returns:
    ((M, K, 2) float32 pixels, (M, K) float32 confidences).
  """
  visible = visibility == labels.Visibility.VISIBLE
  kept = visible & (rng.uniform(size=visible.shape) >= drop_rate)
  scale = np.asarray(cropping.pck_scale(boxes))[:, None, None]
  noise = sigma * scale * rng.normal(size=true_keypoints.shape)
  centres = ((boxes[:, :2] + boxes[:, 2:]) / 2)[:, None, :]
  seen = np.where(visible[..., None], true_keypoints, 0.0)
  points = np.where(kept[..., None], seen + noise, centres)
  return points.astype(np.float32), kept.astype(np.float32)


def graph_predictions(model: nn.Module, variables: Any, boxes: np.ndarray,
                      points: np.ndarray, confidence: np.ndarray, *,
                      batch_size: int) -> dict[str, np.ndarray]:
  """`GRAPH_METHODS`' (M, K, 2) pixels from keypoints-in runs of the model.

  Args:
    model: the `OcclusionNet`.
    variables: its variables.
    boxes: (M, 4) pixels.
    points: (M, K, 2) input keypoints, pixels.
    confidence: (M, K) their confidences.
    batch_size: views per call (the last call is padded: one compilation).
  """
  apply = jax.jit(lambda variables, boxes, points, confidence: model.apply(
      variables, None, boxes, train=False, keypoints=points,
      confidence=confidence))
  outputs = {method: [] for method in GRAPH_METHODS}
  for start in range(0, len(boxes), batch_size):
    chunk = slice(start, start + batch_size)
    size = len(boxes[chunk])
    pad = batch_size - size

    def padded(array, fill):
      return np.concatenate([array, np.full((pad,) + array.shape[1:], fill,
                                            array.dtype)])

    chunk_boxes = padded(boxes[chunk], 1.0)
    chunk_boxes[size:, :2] = 0.0  # Unit padding boxes.
    result = jax.device_get(apply(
        variables, chunk_boxes,
        boxes_lib.to_box_coordinates(padded(points[chunk], 0.0),
                                     chunk_boxes),
        padded(confidence[chunk], 0.0)))
    for method, key in GRAPH_METHODS.items():
      outputs[method].append(np.asarray(boxes_lib.from_box_coordinates(
          result[key][:size], chunk_boxes[:size])))
  return {method: np.concatenate(values) for method, values in
          outputs.items()}


def add_detector_predictions(predictions: Mapping[str, np.ndarray],
                             model: nn.Module, variables: Any, *,
                             sigma: float, drop_rate: float, seed: int,
                             batch_size: int) -> dict[str, np.ndarray]:
  """`evaluate.collect_predictions`' output plus `METHODS`' keypoints."""
  points, confidence = simulate(
      predictions['true_keypoints'], predictions['visibility'],
      predictions['boxes'], np.random.default_rng(seed), sigma=sigma,
      drop_rate=drop_rate)
  return dict(predictions) | {DETECTOR: points} | graph_predictions(
      model, variables, predictions['boxes'].astype(np.float32), points,
      confidence, batch_size=batch_size)


def evaluate_workdir(workdir: str, *, split: str | None = None,
                     data_dir: str | None = None, step: int | None = None,
                     sigma: float = DEFAULT_SIGMA,
                     drop_rate: float = DEFAULT_DROP_RATE,
                     ) -> dict[str, Any]:
  """A checkpoint's metrics with the simulated detector's methods.

  Evaluation's methods and figures (`evaluate.compute_metrics`) and
  `METHODS`', written into `<workdir>/eval/<split>/simulated_detector/`
  (`outputs.write_metrics`) with `detector_sigma` and `detector_drop_rate`.

  Args:
    workdir, split, data_dir, step: as `workdir_evaluation.restore_split`'s.
    sigma: the detector's noise, a fraction of L.
    drop_rate: the fraction of visible keypoints it misses.

  Returns:
    The metrics.
  """
  config, model, variables, mesh, step, split, source = (
      workdir_evaluation.restore_split(workdir, split=split,
                                       data_dir=data_dir, step=step))
  predictions = evaluate.collect_predictions(
      config, evaluate.make_predict_fn(model, config.eval, mesh), variables,
      source, mesh, max_instances=config.eval.max_instances)
  predictions = add_detector_predictions(
      predictions, model, variables, sigma=sigma, drop_rate=drop_rate,
      seed=config.seed,
      batch_size=config.eval.batch_size * config.data.num_views)
  results = evaluate.compute_metrics(
      predictions, config.eval.alphas, config.eval.noise_sigmas,
      config.eval.box_jitter, methods=evaluate.METHODS + METHODS)
  results |= {'step': int(step), 'detector_sigma': float(sigma),
              'detector_drop_rate': float(drop_rate)}
  if workdir_lib.is_writer():
    outputs.write_metrics(
        os.fspath(outputs.split_directory(workdir, split) / DIRECTORY),
        results)
  return results


def format_summary(results: Mapping[str, Any]) -> str:
  """PCK@0.1 (%) of the heatmap-fed and the detector-fed methods."""
  lines = [f'simulated detector: sigma {results["detector_sigma"]} of L, '
           f'{100 * results["detector_drop_rate"]:.0f}% of visible '
           'keypoints dropped',
           f'{"PCK@0.1 (%)":<17}{"all":>7}{"visible":>9}{"occluded":>10}']
  for method in evaluate.NETWORK_METHODS + METHODS:
    values = [results.get(metric_keys.pck(method, subset, 0.1))
              for subset in ('all', 'visible', 'occluded')]
    lines.append(f'{method:<17}' + ''.join(
        f'{"n/a" if value is None else f"{100 * value:.1f}":>{width}}'
        for value, width in zip(values, (7, 9, 10))))
  return '\n'.join(lines)
