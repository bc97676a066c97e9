"""Hand-labelled occluded keypoints vs trifocal transfer (paper Fig. 4 left).

CarFusion labels occluded keypoints as well as visible ones, so the paper
measures how many hand-labelled occluded points lie within alpha * L of the
point that two other views' visible labels transfer into the view with the
trifocal tensor ("nearly 90% at alpha = 0.1"). The transfer is the trifocal
loss's own ground truth: the same support pair rule
(`losses.trifocal_supports`) and transfer (`losses.trifocal_targets`), here
applied to the labels instead of the predictions. L is the PCK length of the
view (`cropping.pck_scale`).

Synthetic data carries true positions, not hand labels, so we simulate the
annotator (`data_prep.annotator`, whose model is also the one
`make_synthetic_carfusion` can write into the labels).

On real CarFusion the keypoints already are hand labels: there the
noise-free curve (`annotator.NOISE_FREE`) is the paper's measurement, and
the noisy one adds simulated noise on top. Cameras are the record's
(calibrated, or PnP fitted to the visible labels: then the transfer also
carries the PnP error). On exact synthetic cameras the noise-free fraction
is 1 at any alpha above the float32 transfer error.

Where the record's labels are not exact (`true_keypoints` differs, e.g.
synthetic CarFusion written with annotator noise), `study` also measures how
far the trifocal loss's targets, transferred from the labels, lie from the
true positions of the occluded points they supervise (median and 90th
percentile in % of L).

`annotate`, `label_counts` and `study` are pure; `run_study` reads a TFDS
split and writes RESULT_FILE and PLOT_FILE (`launch.trifocal_labels`).
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
import dataclasses
import json
import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from data_prep import annotator
from occnet_jax import categories
from occnet_jax import cropping
from occnet_jax import input_pipeline
from occnet_jax import keypoints as keypoints_lib
from occnet_jax import labels
from occnet_jax import losses
from occnet_jax.evaluation import plots
from occnet_jax.evaluation import scores

OCCLUDED = labels.Visibility.OCCLUDED
# The alpha grid of the curves (0 to 0.3 in steps of 0.005); `round` makes
# 0.1 exactly the float 0.1.
ALPHAS = tuple(round(0.005 * i, 3) for i in range(61))
HEADLINE_ALPHA = 0.1
# The paper: "at alpha = 0.1, nearly 90% of the hand-labeled keypoints lie
# within the region of the geometrically consistent keypoints".
PAPER_FRACTION_AT_HEADLINE = 0.9
RESULT_FILE = 'trifocal_labels.json'
PLOT_FILE = 'trifocal_labels.png'
# Batches between progress lines of `run_study`.
LOG_EVERY_BATCHES = 10


@jax.jit
def label_counts(keypoints, visibility, cameras, boxes, view_mask):
  """Counts the occluded labels within alpha * L of their trifocal target.

  Targets are transferred from the labels of visible keypoints in two other
  views (`losses.trifocal_targets`, the trifocal loss's rule); a keypoint
  takes part when it is labelled occluded in a real view and has a target.

  Args:
    keypoints: (B, V, K, 2) labels, pixels.
    visibility: (B, V, K) labels.
    cameras: (B, V, 3, 4) camera matrices, car object frame -> pixels.
    boxes: (B, V, 4) boxes, pixels.
    view_mask: (B, V) False for padding views.

  Returns:
    (within, num_points, num_occluded): (A,) counts within each alpha of
    `ALPHAS`, the number of occluded labels with a target, and of all
    occluded labels of real views.
  """
  targets, valid = losses.trifocal_targets(keypoints, visibility, cameras,
                                           view_mask)
  occluded = (visibility == OCCLUDED) & view_mask[..., None]
  within, num_points = scores.pck_counts(targets, keypoints, boxes,
                                          occluded & valid, jnp.array(ALPHAS))
  return within, num_points, jnp.sum(occluded, dtype=jnp.int32)


@jax.jit
def target_errors(keypoints, true_keypoints, visibility, cameras, boxes,
                  view_mask):
  """How far the trifocal loss's targets lie from the true positions.

  Args:
    keypoints: (B, V, K, 2) labels, pixels: the targets come from them.
    true_keypoints: (B, V, K, 2) exact positions.
    visibility, cameras, boxes, view_mask: as in `label_counts`.

  Returns:
    (error (B, V, K), supervised (B, V, K)): the distance of each target
    from the true position in units of L, and the occluded points of real
    views that have a target (the points the trifocal loss supervises).
  """
  targets, valid = losses.trifocal_targets(keypoints, visibility, cameras,
                                           view_mask)
  error = jnp.linalg.norm(targets - true_keypoints, axis=-1) / (
      cropping.pck_scale(boxes)[..., None])
  return error, valid & (visibility == OCCLUDED) & view_mask[..., None]


def _error_summary(errors: list[np.ndarray]) -> dict[str, Any]:
  errors = np.concatenate(errors) if errors else np.zeros(0)
  if not errors.size:
    return {'num_points': 0, 'median': None, 'p90': None}
  return {'num_points': int(errors.size),
          'median': float(100.0 * np.median(errors)),
          'p90': float(100.0 * np.percentile(errors, 90))}


def _fractions(within: np.ndarray, total: int) -> list[float | None]:
  return [float(c) / total if total else None for c in within]


def study(batches: Iterable[Mapping[str, np.ndarray]],
          noise: annotator.AnnotatorNoise, rng: np.random.Generator,
          category: keypoints_lib.Category,
          log_every: int = 0) -> dict[str, Any]:
  """Fig. 4 left over batches of cars, with and without annotator noise.

  Args:
    batches: batch dicts (docs/design.md) with `keypoints` (the labels:
      true positions, simulated or real hand labels), `true_keypoints`,
      `visibility`, `cameras`, `boxes` and `view_mask`.
    noise: the annotator model of the noisy curve.
    rng: draws the annotator noise (`annotate`), batch after batch.
    category: the labels' keypoint category (mirror pairs of the noise).
    log_every: log progress every this many batches (0 = never).

  Returns:
    A JSON-able dict: `num_cars` (cars with a real view), `num_points`
    (occluded labels with a trifocal target, noisy labels),
    `num_points_noise_free`, `num_occluded` (all occluded labels),
    `alphas`, `fraction_within` and `fraction_within_noise_free` (per alpha;
    null without points), `noise_model` (the parameters),
    `fraction_at_0.1` and `fraction_at_0.1_noise_free`, and
    `target_error`: `median` and `p90` (90th percentile) in % of L of the
    distance between the trifocal targets transferred from the record's
    labels and the true positions (`target_errors`), over `num_points`.
  """
  within = {'noisy': np.zeros(len(ALPHAS), np.int64),
            'noise_free': np.zeros(len(ALPHAS), np.int64)}
  points = {'noisy': 0, 'noise_free': 0}
  num_cars = num_occluded = 0
  errors = []
  for index, batch in enumerate(batches):
    fields = (batch['visibility'], batch['cameras'], batch['boxes'],
              batch['view_mask'])
    noisy = annotator.annotate(batch['keypoints'], batch['visibility'],
                               batch['boxes'], noise, rng, category)
    error, supervised = jax.device_get(target_errors(
        batch['keypoints'], batch['true_keypoints'], *fields))
    errors.append(error[supervised])
    for name, keypoints in (('noisy', noisy),
                            ('noise_free', batch['keypoints'])):
      counts = jax.device_get(label_counts(keypoints, *fields))
      within[name] += counts[0]
      points[name] += int(counts[1])
    num_occluded += int(counts[2])  # Same labels occluded in both runs.
    num_cars += int(np.sum(np.any(batch['view_mask'], axis=1)))
    if log_every and (index + 1) % log_every == 0:
      logging.info('%d cars: %d of %d occluded labels have a trifocal target.',
                   num_cars, points['noisy'], num_occluded)
  headline = ALPHAS.index(HEADLINE_ALPHA)
  fraction = _fractions(within['noisy'], points['noisy'])
  noise_free = _fractions(within['noise_free'], points['noise_free'])
  return {
      'num_cars': num_cars,
      'num_points': points['noisy'],
      'num_points_noise_free': points['noise_free'],
      'num_occluded': num_occluded,
      'alphas': list(ALPHAS),
      'fraction_within': fraction,
      'fraction_within_noise_free': noise_free,
      'noise_model': dataclasses.asdict(noise),
      f'fraction_at_{HEADLINE_ALPHA}': fraction[headline],
      f'fraction_at_{HEADLINE_ALPHA}_noise_free': noise_free[headline],
      'target_error': _error_summary(errors),
  }


def car_batches(source: Sequence[Mapping[str, Any]], num_views: int,
                batch_size: int, max_cars: int, rng: np.random.Generator,
                ) -> Iterator[input_pipeline.Batch]:
  """Batches of cars with `num_views` sampled views, each car once.

  Views are sampled as in training batches (`input_pipeline.sample_views`):
  the trifocal loss sees the same kind of view sets.

  Args:
    source: random-access records of the split.
    num_views: V; cars with fewer views are padded.
    batch_size: cars per batch; the last batch is completed with padding.
    max_cars: stop after this many cars (0 = all).
    rng: samples the views.

  Yields:
    Batches (docs/design.md).
  """
  count = len(source) if max_cars <= 0 else min(len(source), max_cars)
  for start in range(0, count, batch_size):
    examples = [input_pipeline.sample_views(source[index], rng, num_views)
                for index in range(start, min(start + batch_size, count))]
    examples += ([input_pipeline.padding_example(examples[0])]
                 * (batch_size - len(examples)))
    yield input_pipeline.stack(examples)


def run_study(*, dataset: str, category: str, split: str, data_dir: str,
              output: str, noise: annotator.AnnotatorNoise, seed: int,
              max_cars: int = 0,
              num_views: int = 4, batch_size: int = 32) -> dict[str, Any]:
  """Runs `study` on a TFDS split; writes RESULT_FILE and PLOT_FILE.

  The dataset is built on first use when its builder is registered
  (`data_prep.builders.register`; `input_pipeline.prepare_dataset`).

  Args:
    dataset: TFDS name, with its builder config after a '/'.
    category: name of its keypoint category (`occnet_jax.categories`).
    split: the split.
    data_dir: the TFDS data dir.
    output: directory of the JSON and the PNG (created).
    noise: the annotator model.
    seed: seeds the view sampling and, independently, the noise.
    max_cars: at most this many cars (0 = all).
    num_views: views sampled per car (at least 3).
    batch_size: cars per batch.

  Returns:
    The written dict: `dataset`, `split` and the keys of `study`.
  """
  if num_views < 3:
    raise ValueError('Need num_views >= 3 (two support views and a target), '
                     f'got {num_views}.')
  if batch_size < 1:
    raise ValueError(f'Need batch_size >= 1, got {batch_size}.')
  name, _, builder_config = dataset.partition('/')
  config = ml_collections.ConfigDict(
      {'data': {'name': name, 'builder_config': builder_config,
                'skip_corrupt': False}})
  input_pipeline.prepare_dataset(config, data_dir)
  source = input_pipeline.get_source(config, split, data_dir)
  view_rng, noise_rng = map(np.random.default_rng,
                            np.random.SeedSequence(seed).spawn(2))
  logging.info('Studying %s/%s: %d cars.', dataset, split,
               len(source) if max_cars <= 0 else min(len(source), max_cars))
  result = {'dataset': dataset, 'split': split}
  result.update(study(
      car_batches(source, num_views, batch_size, max_cars, view_rng), noise,
      noise_rng, categories.get_category(category),
      log_every=LOG_EVERY_BATCHES))
  os.makedirs(output, exist_ok=True)
  with open(os.path.join(output, RESULT_FILE), 'w') as file:
    json.dump(result, file, indent=2)
  plots.trifocal_labels(result, os.path.join(output, PLOT_FILE),
                        headline_alpha=HEADLINE_ALPHA,
                        paper_fraction=PAPER_FRACTION_AT_HEADLINE)
  return result


def format_summary(result: Mapping[str, Any]) -> str:
  """One line: the fraction within HEADLINE_ALPHA, with and without noise."""

  def percent(value):
    return 'n/a' if value is None else f'{100.0 * value:.1f}%'

  return (f'{result["dataset"]}/{result["split"]}: '
          f'{percent(result[f"fraction_at_{HEADLINE_ALPHA}"])} of '
          f'{result["num_points"]} occluded labels with a target (of '
          f'{result["num_occluded"]}, {result["num_cars"]} cars) within '
          f'alpha={HEADLINE_ALPHA:g} of the trifocal transfer with annotator '
          'noise, '
          f'{percent(result[f"fraction_at_{HEADLINE_ALPHA}_noise_free"])} '
          'noise-free (paper, CarFusion: ~'
          f'{100.0 * PAPER_FRACTION_AT_HEADLINE:g}%). ' + _format_error(
              result['target_error']))


def _format_error(error: Mapping[str, Any]) -> str:
  if not error['num_points']:
    return 'No supervised occluded point.'
  return (f'Trifocal targets from the labels vs true positions, over '
          f'{error["num_points"]} supervised occluded points: median '
          f'{error["median"]:.1f}% of L, 90th percentile {error["p90"]:.1f}%.')
