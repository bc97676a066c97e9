"""Tests of reproduction.label_study (paper Fig. 4 left).

The cars are exact (tests/synthetic_cars.py): every keypoint's position is
its true projection, so noise-free labels sit on their trifocal targets and
the noisy fractions follow the annotator model, which the tests compute
independently (per point, a Gaussian linearised through the transfer).
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_prep import annotator
from occnet_jax import boxes as boxes_lib
from occnet_jax import cropping
from occnet_jax import geometry
from occnet_jax import losses
from occnet_jax.categories import car as car_lib
from reproduction import label_study
from tests import fake_data
from tests import synthetic_cars

NUM_CARS, NUM_VIEWS = 64, 4
# Every view's box is this size, so L is the same in all views and the
# support labels' noise is sigma_visible * L_BOX in pixels (the annotator's
# scale is the padded box's); PCK's L is the tight box's, L_PCK.
L_BOX = 800.0
L_PCK = float(cropping.pck_scale(np.array([0.0, 0.0, L_BOX, L_BOX])))
OCCLUDED = 2
CAR = car_lib.CAR
MIRROR = np.asarray(CAR.mirror)
SAMPLES = 4000  # Monte Carlo draws per point of the expected fraction.


@pytest.fixture(scope='module')
def batch(module_seed):
  batch = synthetic_cars.make_batch(np.random.default_rng(module_seed),
                                    NUM_CARS, NUM_VIEWS)
  centre = batch['keypoints'].mean(axis=2)
  batch['boxes'] = np.concatenate(
      [centre - L_BOX / 2, centre + L_BOX / 2], -1).astype(np.float32)
  return batch


def study_fields(batch):
  return (batch['keypoints'], batch['visibility'], batch['cameras'],
          batch['view_mask'])


@jax.jit
def supports_and_jacobians(keypoints, visibility, cameras, view_mask):
  """Targets, validity and d target / d (x_a, x_c), (B, V, K, 2, 4)."""
  targets, valid = losses.trifocal_targets(keypoints, visibility, cameras,
                                           view_mask)
  support = losses.trifocal_supports(keypoints, visibility, cameras,
                                     view_mask)

  def transfer(point_a, point_c, camera_a, camera_target, camera_c):
    return geometry.normalized_trifocal_transfer(
        camera_a, camera_target, camera_c, point_a, point_c)[0]

  jacobian = jax.jacfwd(transfer, argnums=(0, 1))
  for _ in range(3):
    jacobian = jax.vmap(jacobian)
  jacobians = jacobian(support.point_a, support.point_c, support.camera_a,
                       support.camera_target, support.camera_c)
  return targets, valid, jnp.concatenate(jacobians, -1)


def expected_probabilities(batch, noise, alphas, rng):
  """P(label within alpha * L_PCK of its target), (A, points with a target).

  Under the model, the distance in units of L_BOX is |mu + e|: mu is 0, or
  the offset to the mirror partner with probability `mirror_swap_rate`; e is
  Gaussian, sigma_occluded^2 I from the label plus sigma_visible^2 J J^T
  from the support labels through the transfer's Jacobian J (exact when
  sigma_visible = 0, first order otherwise).
  """
  _, valid, jacobians = map(np.asarray,
                            supports_and_jacobians(*study_fields(batch)))
  points = (batch['visibility'] == OCCLUDED) & valid
  jacobians = jacobians[points].astype(np.float64)  # (n, 2, 4)
  covariance = (noise.sigma_occluded**2 * np.eye(2) + noise.sigma_visible**2
                * jacobians @ np.swapaxes(jacobians, -1, -2))
  errors = np.einsum('nij,snj->sni', np.linalg.cholesky(
      covariance + 1e-18 * np.eye(2)), rng.standard_normal(
          (SAMPLES, len(jacobians), 2)))
  keypoints = batch['keypoints'].astype(np.float64)
  offsets = (keypoints[..., MIRROR, :] - keypoints)[points] / L_BOX
  kept, swapped = (np.linalg.norm(error, axis=-1) * L_BOX / L_PCK
                   for error in (errors, offsets + errors))
  rate = noise.mirror_swap_rate
  return np.stack([(1.0 - rate) * np.mean(kept <= alpha, axis=0)
                   + rate * np.mean(swapped <= alpha, axis=0)
                   for alpha in alphas])


def test_noise_free_labels_lie_on_their_targets(batch, rng):
  result = label_study.study([batch], annotator.NOISE_FREE, rng, CAR)
  _, valid, _ = supports_and_jacobians(*study_fields(batch))
  occluded = batch['visibility'] == OCCLUDED
  assert result['num_occluded'] == occluded.sum()
  assert result['num_points'] == np.sum(occluded & np.asarray(valid)) > 0
  assert result['num_cars'] == NUM_CARS
  fractions = np.array(result['fraction_within_noise_free'])
  assert result['fraction_within'] == result['fraction_within_noise_free']
  # Every point within 0.005 L: the float32 transfer is exact to ~1e-5 L.
  assert label_study.ALPHAS[1] == 0.005
  assert np.all(fractions[1:] == 1.0)
  assert result['fraction_at_0.1'] == 1.0
  assert np.all(np.diff(fractions) >= 0.0)
  # Exact labels: the targets are the true positions of the points they
  # supervise, to float32 precision (% of L).
  assert result['target_error']['num_points'] == result['num_points']
  assert result['target_error']['p90'] < 0.01


def test_target_error_measures_the_labels_distance_to_the_truth(batch, rng):
  noise = annotator.AnnotatorNoise(sigma_visible=0.02, sigma_occluded=0.0,
                                   mirror_swap_rate=0.0)
  noisy = dict(batch, keypoints=annotator.annotate(
      batch['keypoints'], batch['visibility'], batch['boxes'], noise, rng,
      CAR))
  error = label_study.study([noisy], annotator.NOISE_FREE, rng, CAR)[
      'target_error']
  # Noise on the support labels moves the targets by about sigma * L.
  assert 0.5 < error['median'] < 10.0 and error['p90'] > error['median']


@pytest.mark.parametrize('noise', [
    annotator.AnnotatorNoise(),
    annotator.AnnotatorNoise(0.0, 0.08, 0.3),
    annotator.AnnotatorNoise(0.03, 0.03, 0.1),
], ids=str)
def test_fraction_follows_the_noise_model(batch, rng, noise):
  result = label_study.study([batch], noise, rng, CAR)
  fractions = np.array(result['fraction_within'])
  assert np.all(np.diff(fractions) >= 0.0)
  assert result['noise_model'] == dict(
      sigma_visible=noise.sigma_visible, sigma_occluded=noise.sigma_occluded,
      mirror_swap_rate=noise.mirror_swap_rate)
  alphas = (0.05, 0.1, 0.2)
  for alpha, probabilities in zip(
      alphas, expected_probabilities(batch, noise, alphas, rng)):
    expected = probabilities.mean()
    # The count is a sum of independent Bernoulli draws: 5 standard
    # deviations, plus slack for the first-order transfer error.
    tolerance = 5.0 * np.sqrt(np.sum(probabilities * (1.0 - probabilities))
                              ) / len(probabilities) + 0.02
    observed = fractions[label_study.ALPHAS.index(alpha)]
    assert abs(observed - expected) < tolerance, (alpha, observed, expected)
  assert result['fraction_at_0.1'] == fractions[label_study.ALPHAS.index(0.1)]


def random_labels(rng, shape=(40, 3, 12)):
  keypoints = rng.uniform(0.0, 1000.0, size=shape + (2,)).astype(np.float32)
  visibility = rng.integers(0, 3, size=shape)
  origin = rng.uniform(0.0, 500.0, size=shape[:-1] + (2,))
  boxes = np.concatenate(
      [origin, origin + rng.uniform(50.0, 400.0, size=origin.shape)], -1)
  return keypoints, visibility, boxes


def test_annotate_is_deterministic_and_leaves_unlabelled_points(seed):
  keypoints, visibility, boxes = random_labels(np.random.default_rng(seed))
  noise = annotator.AnnotatorNoise()

  def annotate(annotation_seed):
    return annotator.annotate(keypoints, visibility, boxes, noise,
                              np.random.default_rng(annotation_seed), CAR)

  first, again, other = annotate(seed), annotate(seed), annotate(seed + 1)
  assert first.dtype == keypoints.dtype
  np.testing.assert_array_equal(first, again)
  unlabelled = visibility == 0
  np.testing.assert_array_equal(first[unlabelled], keypoints[unlabelled])
  # Every labelled point moves (a coordinate may round back in float32).
  assert np.all(np.any(first != keypoints, -1)[~unlabelled])
  assert np.all(np.any(first != other, -1)[~unlabelled])
  noise_free = annotator.annotate(keypoints, visibility, boxes,
                                    annotator.NOISE_FREE,
                                    np.random.default_rng(seed), CAR)
  np.testing.assert_array_equal(noise_free, keypoints)


def test_annotate_noise_has_the_model_spread(rng):
  keypoints, visibility, boxes = random_labels(rng, (400, 3, 12))
  noise = annotator.AnnotatorNoise(sigma_visible=rng.uniform(0.005, 0.02),
                                     sigma_occluded=rng.uniform(0.03, 0.1),
                                     mirror_swap_rate=0.0)
  labels = annotator.annotate(keypoints, visibility, boxes, noise, rng, CAR)
  scale = np.asarray(boxes_lib.box_scale(boxes))[..., None, None]
  offsets = (labels.astype(np.float64) - keypoints) / scale
  for code, sigma in ((1, noise.sigma_visible), (OCCLUDED,
                                                 noise.sigma_occluded)):
    values = offsets[visibility == code].reshape(-1)
    # Sample variance of n normal values: relative std sqrt(2 / n); the
    # float32 labels add at most ~1e-4 px / L of rounding.
    assert abs(np.var(values) / sigma**2 - 1.0) < 5.0 * np.sqrt(
        2.0 / len(values)), code
    assert abs(np.mean(values)) < 5.0 * sigma / np.sqrt(len(values))


def test_annotate_swaps_occluded_labels_with_their_mirror(rng):
  keypoints, visibility, boxes = random_labels(rng, (400, 3, 12))
  rate = rng.uniform(0.1, 0.5)
  labels = annotator.annotate(
      keypoints, visibility, boxes,
      annotator.AnnotatorNoise(0.0, 0.0, rate), rng, CAR)
  mirrored = keypoints[..., MIRROR, :]
  swapped = np.all(labels == mirrored, -1) & np.any(labels != keypoints, -1)
  kept = np.all(labels == keypoints, -1)
  assert np.all(swapped | kept)
  # Only occluded labels whose partner is labelled can move.
  can_swap = (visibility == OCCLUDED) & (visibility[..., MIRROR] > 0)
  assert not np.any(swapped & ~can_swap)
  count = can_swap.sum()
  assert abs(swapped.sum() / count - rate) < 5.0 * np.sqrt(
      rate * (1.0 - rate) / count)


def test_noise_model_rejects_bad_parameters():
  for bad in (dict(sigma_visible=-0.1), dict(sigma_occluded=-1.0),
              dict(mirror_swap_rate=1.5)):
    with pytest.raises(ValueError):
      annotator.AnnotatorNoise(**bad)


trifocal_geometric = jax.jit(jax.value_and_grad(
    lambda prediction, *fields: losses.trifocal_loss(
        prediction, *fields, mode='geometric'), has_aux=True))


def test_geometric_trifocal_loss_is_the_distance_to_the_targets(batch, rng):
  keypoints, visibility, cameras, view_mask = study_fields(batch)
  view_mask = view_mask & (rng.uniform(size=view_mask.shape) < 0.9)
  boxes = batch['boxes']
  scale = np.asarray(boxes_lib.box_scale(boxes))[..., None]
  pixels = keypoints + 0.05 * scale[..., None] * rng.normal(
      size=keypoints.shape)
  (value, terms), gradient = trifocal_geometric(
      boxes_lib.to_box_coordinates(pixels, boxes), keypoints, visibility,
      cameras, boxes, view_mask)
  targets, valid, _ = map(np.asarray, supports_and_jacobians(
      keypoints, visibility, cameras, view_mask))
  active = valid & (visibility != 1) & view_mask[..., None]
  assert terms['trifocal_terms'] == active.sum() > 0
  squared = np.sum((pixels - targets)**2, -1) / scale**2
  np.testing.assert_allclose(value, squared[active].mean(), rtol=1e-4)
  assert np.all(np.asarray(gradient)[~active] == 0.0)
  # Targets are zero where not valid.
  assert np.all(targets[~valid] == 0.0)


def test_targets_need_three_views(batch):
  fields = [field[:, :2] for field in study_fields(batch)]
  targets, valid = losses.trifocal_targets(*fields)
  assert targets.shape == fields[0].shape and not np.any(valid)


def test_cli_writes_json_and_plot(tmp_path, seed):
  data_dir = str(tmp_path / 'tfds')
  name = fake_data.make_dataset(data_dir, num_views=4,
                                split_sizes={'test': 3}, seed=seed)
  output = str(tmp_path / 'out')
  result = label_study.run_study(
      dataset=name, category='car', split='test', data_dir=data_dir,
      output=output,
      noise=annotator.AnnotatorNoise(), seed=seed, max_cars=0,
      num_views=4, batch_size=2)
  with open(os.path.join(output, label_study.RESULT_FILE)) as file:
    written = json.load(file)
  assert written == result
  for key in ('dataset', 'split', 'num_cars', 'num_points', 'num_occluded',
              'alphas', 'fraction_within', 'fraction_within_noise_free',
              'noise_model', 'fraction_at_0.1'):
    assert key in written, key
  assert written['dataset'] == name and written['num_cars'] == 3
  assert 0 < written['num_points'] <= written['num_occluded']
  assert written['fraction_within_noise_free'][1] == 1.0
  assert 0.0 <= written['fraction_at_0.1'] <= 1.0
  assert os.path.getsize(os.path.join(output,
                                      label_study.PLOT_FILE)) > 1000
  assert 'trifocal transfer' in label_study.format_summary(written)
