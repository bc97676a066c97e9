"""Tests of the synthetic intersections written in the CarFusion layout."""

import collections

import numpy as np
import pytest

from data_prep import carfusion_format
from data_prep import make_synthetic_carfusion
from occnet_jax import labels
from occnet_jax.geometry import cameras as cameras_lib
from occnet_jax.rendering import visibility as visibility_lib

TINY = make_synthetic_carfusion.SceneSettings(
    num_cameras=3, num_frames=2, num_cars=8, image_size=(320, 180))
OcclusionKind = labels.OcclusionKind


@pytest.fixture(scope='module')
def tiny_sequence(tmp_path_factory, module_seed):
  sequence_dir = tmp_path_factory.mktemp('carfusion') / 'train' / 'seq'
  counts = make_synthetic_carfusion.generate_sequence(
      np.random.default_rng(module_seed), sequence_dir, TINY)
  return sequence_dir, counts


def test_reader_parses_every_line_and_the_calibration(tiny_sequence,
                                                      module_seed):
  del module_seed  # Printed on failure.
  sequence_dir, counts = tiny_sequence
  issues = carfusion_format.Issues(carfusion_format.PARSE_ISSUES)
  views = carfusion_format.list_views(sequence_dir, issues)
  # Views in which no car is labelled are not written.
  assert 0 < len(views) <= TINY.num_cameras * TINY.num_frames
  calibration = carfusion_format.read_calibration(sequence_dir)
  parsed = collections.Counter()
  num_lines = 0
  for view in views:
    image = carfusion_format.read_image(view.image_path, issues)
    assert image.shape == (TINY.image_size[1], TINY.image_size[0], 3)
    num_lines += len(view.gt_path.read_text().splitlines())
    instances = carfusion_format.read_gt_file(
        view.gt_path, image_size=TINY.image_size, issues=issues)
    for instance_id, instance in instances.items():
      labelled = instance.visibility != labels.Visibility.UNLABELLED
      parsed.update(instance.occlusion_kind[labelled].tolist())
      assert np.sum(instance.visibility == labels.Visibility.VISIBLE) >= (
          TINY.min_visible)
      np.testing.assert_array_equal(
          instance.visibility[labelled] == labels.Visibility.VISIBLE,
          instance.occlusion_kind[labelled] == OcclusionKind.VISIBLE)
      camera = calibration.object_camera(view.camera, view.frame, instance_id)
      shape_3d = calibration.poses[view.frame][instance_id].shape_3d
      pixels = np.asarray(cameras_lib.project(camera, shape_3d)[0])
      np.testing.assert_allclose(instance.keypoints[labelled], pixels[labelled],
                                 atol=0.02)
  # Nothing was skipped, and the labelled lines are those the generator
  # counted (truncated points are counted but never written).
  assert not issues.counts, issues.summary()
  assert num_lines == sum(parsed.values()) > 0
  written = counts.copy()
  del written[OcclusionKind.TRUNCATION]
  assert parsed == written


def test_labels_agree_with_a_ray_cast(tiny_sequence, module_seed):
  sequence_dir, _ = tiny_sequence
  # The generator's first draws make the scene: the seed rebuilds it.
  scene = make_synthetic_carfusion.make_scene(
      np.random.default_rng(module_seed), TINY)
  issues = carfusion_format.Issues(carfusion_format.PARSE_ISSUES)
  agree = []
  for view in carfusion_format.list_views(sequence_dir, issues):
    camera, frame = int(view.camera) - 1, int(view.frame)
    instances = carfusion_format.read_gt_file(
        view.gt_path, image_size=TINY.image_size, issues=issues)
    cars = np.array(sorted(instances)) - 1
    cast_visibility, cast_kinds = (
        visibility_lib.views_keypoint_visibility_by_ray_cast(
            make_synthetic_carfusion.world_mesh(scene, frame),
            scene.world_cameras[camera:camera + 1],
            make_synthetic_carfusion.world_keypoints(scene, frame)[cars], cars,
            scene.object_kinds, TINY.image_size))
    for n, car in enumerate(cars):
      written = instances[car + 1]
      labelled = written.visibility != labels.Visibility.UNLABELLED
      agree.append((cast_visibility[0, n] == written.visibility)
                   & (~labelled | (cast_kinds[0, n] == written.occlusion_kind)))
  print(f'ray-cast agreement {np.mean(agree):.4f} of {np.size(agree)} '
        'keypoints of labelled cars')
  assert not issues.counts, issues.summary()
  assert np.mean(agree) > 0.99


def test_every_occlusion_kind_occurs(tmp_path, module_seed):
  settings = make_synthetic_carfusion.SceneSettings(
      num_cameras=4, num_frames=2, num_cars=10, image_size=(320, 180))
  counts = make_synthetic_carfusion.generate(
      tmp_path, num_sequences={'train': 1, 'test': 1}, settings=settings,
      seed=module_seed)
  print(make_synthetic_carfusion.format_counts(counts))
  for kind in (OcclusionKind.VISIBLE, OcclusionKind.SELF,
               OcclusionKind.OTHER_VEHICLE, OcclusionKind.OTHER_OBJECT,
               OcclusionKind.TRUNCATION):
    assert counts[kind] > 0, kind
  assert counts[OcclusionKind.UNKNOWN] == 0
  assert sorted(p.name for p in tmp_path.iterdir()) == ['test', 'train']
  assert len(list((tmp_path / 'train').iterdir())) == 1
