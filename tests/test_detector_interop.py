"""Other detectors' COCO files in and out: layouts, predict, score, export."""

import json
import pathlib

import cv2
import numpy as np
import pytest

from data_prep import export_coco
from occnet_jax import categories
from occnet_jax import input_pipeline
from occnet_jax import predict
from occnet_jax import workdir_model
from occnet_jax.categories import coco_layouts
from occnet_jax.evaluation import coco_results
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import score_coco
from occnet_jax.evaluation import simulated_detector
from occnet_jax.evaluation import workdir_evaluation
import fake_data
import tiny_workdir

CAR = categories.get_category('car')
APOLLO = coco_layouts.get_layout('apollocar3d_24')
IMAGE_SIZE = (120, 90)  # (width, height)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """(workdir, data dir) of the two-step `test` model on the fake cars."""
  return tiny_workdir.make_workdir(tmp_path_factory)


def _foreign_points(rng, ours):
  """(M, 24, 3) ApolloCar3D keypoints holding `ours` (M, 12, 3) by name."""
  foreign = rng.uniform(0, 1, (len(ours), len(APOLLO.keypoint_names), 3))
  foreign[..., :2] *= 80
  for source, target in APOLLO.to_category.items():
    foreign[:, APOLLO.keypoint_names.index(source)] = ours[
        :, CAR.keypoint_names.index(target)]
  return foreign


@pytest.mark.parametrize('name', list(coco_layouts.LAYOUTS))
def test_layouts_map_by_name(rng, name):
  layout = coco_layouts.get_layout(name)
  points = rng.normal(size=(5, len(layout.keypoint_names), 3))
  mapped = coco_layouts.map_keypoints(points, layout, CAR)
  targets = {target: source for source, target in layout.to_category.items()}
  for index, keypoint in enumerate(CAR.keypoint_names):
    expected = (points[:, layout.keypoint_names.index(targets[keypoint])]
                if keypoint in targets else np.zeros((5, 3)))
    np.testing.assert_allclose(mapped[:, index], expected, rtol=1e-6)


def test_a_missing_keypoint_gets_confidence_zero(rng):
  kept = CAR.keypoint_names[1:]
  layout = coco_layouts.KeypointLayout('partial', 'car', ('extra',) + kept,
                                       {name: name for name in kept})
  mapped = coco_layouts.map_keypoints(
      rng.uniform(1, 2, (3, len(kept) + 1, 3)), layout, CAR)
  assert np.all(mapped[:, 0] == 0) and np.all(mapped[:, 1:, 2] > 0)


def test_visibility_flags_and_confidences_are_told_apart(rng):
  scores = rng.uniform(0, 1, 20)
  assert not coco_results.are_flags(scores)
  assert not coco_results.are_flags(np.array([0, 1, 1]))
  flags = np.array([0, 1, 2, 2])
  assert coco_results.are_flags(flags)
  np.testing.assert_array_equal(coco_results.confidences(flags, True),
                                [0, 0, 1, 1])
  np.testing.assert_array_equal(coco_results.confidences(scores, False),
                                scores)


@pytest.mark.parametrize('entry, message', [
    ({'keypoints': [1, 2, 1]}, 'no integer "image_id"'),
    ({'image_id': 3, 'keypoints': [1, 2]}, 'no "keypoints" list'),
    ({'image_id': 3, 'keypoints': [1, 2, 1], 'bbox': [0, 0, -1, 2]},
     'a "bbox"'),
    ({'image_id': 3, 'keypoints': [1, 2, 1], 'score': 'high'}, 'a "score"'),
])
def test_malformed_results_are_named(entry, message):
  with pytest.raises(coco_results.CocoInputError,
                     match=f'r.json: entry 1 has {message}'):
    coco_results.check_results([{'image_id': 1, 'keypoints': [0, 0, 1]},
                                entry], 'r.json')


def _write_image(rng, path):
  image = rng.integers(0, 256, IMAGE_SIZE[::-1] + (3,), np.uint8)
  cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  return image


def test_foreign_coco_results_run_through_the_graph_networks(trained, rng,
                                                             tmp_path):
  workdir, _ = trained
  image_path = tmp_path / '000000000042.png'
  _write_image(rng, image_path)
  ours = np.concatenate([rng.uniform(10, 80, (2, 12, 2)),
                         rng.uniform(0.1, 1, (2, 12, 1))], -1)
  ours[1, 3, 2] = 0.0  # Not detected: confidence 0 and no position.
  boxes = [[5.0, 4.0, 90.0, 85.0], [12.0, 8.0, 70.0, 60.0]]
  foreign = _foreign_points(rng, ours)
  foreign[1, APOLLO.keypoint_names.index('rear_wheel_left'), :2] = 0.0
  entries = [{'image_id': 42, 'category_id': 1,
              'keypoints': points.reshape(-1).tolist(), 'score': 0.9,
              'bbox': [x0, y0, x1 - x0, y1 - y0]}
             for points, (x0, y0, x1, y1) in zip(foreign, boxes)]
  entries.append(dict(entries[0], image_id=7))  # Another image's.
  coco_path = tmp_path / 'pifpaf.json'
  coco_path.write_text(json.dumps(entries))
  cars = predict.predict_files(workdir, str(image_path), None,
                               str(tmp_path / 'foreign'), str(coco_path),
                               keypoint_layout='apollocar3d_24')
  ours[1, 3, :2] = 0.0
  own_path, boxes_path = tmp_path / 'own.json', tmp_path / 'boxes.json'
  own_path.write_text(json.dumps(ours.tolist()))
  boxes_path.write_text(json.dumps(boxes))
  expected = predict.predict_files(workdir, str(image_path), str(boxes_path),
                                   str(tmp_path / 'own'), str(own_path))
  assert len(cars) == 2
  for car, reference in zip(cars, expected):
    np.testing.assert_allclose(car['box'], reference['box'])
    np.testing.assert_allclose(car['keypoints_2d'], reference['keypoints_2d'],
                               rtol=1e-5, atol=1e-4)
  with pytest.raises(coco_results.CocoInputError, match='24 keypoints'):
    predict.predict_files(workdir, str(image_path), None,
                          str(tmp_path / 'wrong'), str(coco_path))


def _detections(rng, image_ids):
  entries = []
  for image_id in image_ids:
    for _ in range(rng.integers(1, 3)):
      x0, y0 = rng.uniform(0, 40, 2)
      entries.append({'image_id': int(image_id), 'category_id': 3,
                      'bbox': [x0, y0, *rng.uniform(20, 50, 2)],
                      'score': 0.8})
  return entries


def test_a_folder_with_a_bad_image(trained, rng, tmp_path):
  workdir, _ = trained
  folder = tmp_path / 'frames'
  folder.mkdir()
  for index in range(3):
    _write_image(rng, folder / f'{index:06d}.jpg')
  data = (folder / '000001.jpg').read_bytes()
  (folder / '000001.jpg').write_bytes(data[:len(data) // 2])
  (folder / 'notes.txt').write_text('not an image')
  detections = _detections(rng, range(3))
  detections_path = tmp_path / 'detections.json'
  detections_path.write_text(json.dumps(detections))
  output = tmp_path / 'out'
  summary = predict.predict_frames(workdir, str(folder), str(output),
                                   boxes_path=str(detections_path),
                                   overlays=True)
  assert summary['num_frames'] == 2
  assert [item['name'] for item in summary['bad_frames']] == [
      str(folder / '000001.jpg')]
  results = json.loads((output / predict.FRAMES_RESULTS).read_text())
  expected = sum(entry['image_id'] != 1 for entry in detections)
  assert len(results) == summary['num_cars'] == expected
  assert {entry['image_id'] for entry in results} == {0, 2}
  assert all(len(entry['keypoints']) == 3 * CAR.num_keypoints
             for entry in results)
  images = json.loads((output / predict.FRAMES_IMAGES).read_text())
  assert [image['id'] for image in images] == [0, 2]
  assert sorted(path.name for path in (output / 'overlays').iterdir()) == [
      '000000.png', '000002.png']


def test_a_video_with_a_bad_frame(trained, rng, tmp_path):
  workdir, _ = trained
  path = tmp_path / 'clip.avi'
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 5,
                           IMAGE_SIZE)
  for _ in range(5):
    writer.write(rng.integers(0, 256, IMAGE_SIZE[::-1] + (3,), np.uint8))
  writer.release()
  # Cut the file inside the last frame (the fifth JPEG start of image):
  # its container still counts 5.
  data, last = path.read_bytes(), -1
  for _ in range(5):
    last = data.find(b'\xff\xd8\xff', last + 1)
  path.write_bytes(data[:last + 64])
  detections_path = tmp_path / 'detections.json'
  detections_path.write_text(json.dumps(_detections(rng, range(5))))
  video = tmp_path / 'annotated.avi'
  summary = predict.predict_frames(
      workdir, str(path), str(tmp_path / 'out'),
      boxes_path=str(detections_path), video_output=str(video))
  assert summary['num_frames'] + len(summary['bad_frames']) == 5
  assert [item['name'] for item in summary['bad_frames']] == ['frame 4']
  capture = cv2.VideoCapture(str(video))
  assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == summary['num_frames']
  capture.release()


def _method_keys(results, method):
  return {key for key in results
          if (metric_keys.try_parse(key) or metric_keys.MetricKey(''))
          .method == method}


def test_scoring_agrees_with_evaluate(trained, tmp_path):
  workdir, data_dir = trained
  evaluated = workdir_evaluation.evaluate_workdir(workdir, split=tiny_workdir.SPLIT,
                                           data_dir=data_dir)
  config, model, variables, mesh, _ = workdir_model.restore_workdir(workdir)
  source = input_pipeline.get_source(config, tiny_workdir.SPLIT, data_dir)
  predictions = evaluate.collect_predictions(
      config, evaluate.make_predict_fn(model, config.eval, mesh), variables,
      source, mesh, max_instances=config.eval.max_instances)
  confidence = 1.0 - predictions['occlusion.kgnn2d'].astype(np.float64)
  points = np.concatenate([predictions['kgnn2d'], confidence[..., None]], -1)
  entries = [{'image_id': index + 1, 'category_id': 3, 'score': 1.0,
              'keypoints': view.reshape(-1).tolist()}
             for index, view in enumerate(points)]
  results_path = tmp_path / 'kgnn2d.coco.json'
  results_path.write_text(json.dumps(entries))
  scored = score_coco.score_file(
      str(results_path), fake_data.NAME, tiny_workdir.SPLIT, data_dir,
      'kgnn2d', str(tmp_path / 'scored'), alphas=config.eval.alphas,
      coordinates='frame', max_cars=config.eval.max_instances)
  # A results file holds keypoints and scores: no noisy or jittered
  # inputs, no camera and no model gate to score.
  keys = _method_keys(evaluated, 'kgnn2d') - {
      key for key in evaluated if key.startswith(('robustness.',
                                                  'pck_box_jitter.',
                                                  'yaw_error.',
                                                  'gate_open_pck.'))}
  keys |= {key for key in evaluated if key.startswith('count.')} | {
      'num_instances', 'num_cars'}
  assert metric_keys.occlusion_auc('kgnn2d') in keys
  for key in sorted(keys):
    assert scored[key] == evaluated[key], key
  written = json.loads((tmp_path / 'scored' / 'metrics.json').read_text())
  assert written[metric_keys.pck('kgnn2d', 'all', 0.1)] == evaluated[
      metric_keys.pck('kgnn2d', 'all', 0.1)]


@pytest.mark.parametrize('occluded', [False, True])
def test_exported_ground_truth_scores_pck_100(fake_data_dir, tmp_path,
                                              occluded):
  source = input_pipeline.open_split(fake_data.NAME, tiny_workdir.SPLIT,
                                     fake_data_dir)
  path = export_coco.export_split(source, CAR, str(tmp_path), 'test',
                                  occluded=occluded)
  exported = json.loads(pathlib.Path(path).read_text())
  views = score_coco.split_views(source)
  assert len(exported['images']) == len(views['image_id'])
  image = cv2.imread(str(tmp_path / exported['images'][0]['file_name']))
  assert image.shape[:2] == (views['crop_size'],) * 2
  flags = np.asarray([entry['keypoints'][2::3]
                      for entry in exported['annotations']])
  hidden = views['visibility'] == 2
  assert np.all((flags == 1) == (hidden & occluded))
  if not occluded:  # No occluded position is written.
    xy = np.asarray([entry['keypoints'] for entry in
                     exported['annotations']]).reshape(len(flags), -1, 3)
    assert np.all(xy[hidden] == 0)
  entries = [dict(entry, score=1.0) for entry in exported['annotations']]
  scored = score_coco.score_results(
      entries, views, 'truth', layout=coco_layouts.get_layout('occnet_car_12'),
      category=CAR, alphas=(0.05, 0.1), num_resamples=10)
  for alpha in (0.05, 0.1):
    assert scored[metric_keys.pck('truth', 'visible', alpha)] == 1.0
    assert scored[metric_keys.pck('truth', 'occluded', alpha)] == (
        1.0 if occluded else 0.0)


def test_the_simulated_detector_never_reads_occluded_positions(rng):
  visibility = rng.integers(0, 3, (6, 12))
  truth = rng.uniform(0, 100, (6, 12, 2))
  boxes = np.concatenate([rng.uniform(0, 20, (6, 2)),
                          rng.uniform(60, 90, (6, 2))], -1)
  moved = np.where((visibility != 1)[..., None],
                   truth + rng.normal(size=truth.shape), truth)
  seed = int(rng.integers(2**31))
  inputs = [simulated_detector.simulate(
      points, visibility, boxes, np.random.default_rng(seed), sigma=0.05,
      drop_rate=0.3) for points in (truth, moved)]
  for first, second in zip(*inputs):
    np.testing.assert_array_equal(first, second)
  points, confidence = inputs[0]
  assert np.all(confidence[visibility != 1] == 0)
  exact, kept = simulated_detector.simulate(
      truth, visibility, boxes, rng, sigma=0.0, drop_rate=0.0)
  np.testing.assert_array_equal(kept, visibility == 1)
  np.testing.assert_allclose(exact[visibility == 1], truth[visibility == 1],
                             rtol=1e-6)
  centres = np.repeat((boxes[:, None, :2] + boxes[:, None, 2:]) / 2, 12, 1)
  np.testing.assert_allclose(points[confidence == 0],
                             centres[confidence == 0], rtol=1e-6)


def test_evaluation_with_a_simulated_detector(trained):
  workdir, data_dir = trained
  results = simulated_detector.evaluate_workdir(
      workdir, split=tiny_workdir.SPLIT, data_dir=data_dir, sigma=0.0,
      drop_rate=0.0)
  for alpha in (0.05, 0.3):
    assert results[metric_keys.pck('detector', 'visible', alpha)] == 1.0
  for method in simulated_detector.METHODS + evaluate.METHODS:
    for subset in ('all', 'visible', 'occluded'):
      assert 0.0 <= results[metric_keys.pck(method, subset, 0.1)] <= 1.0
  written = pathlib.Path(workdir, 'eval', tiny_workdir.SPLIT,
                         simulated_detector.DIRECTORY, 'metrics.json')
  assert json.loads(written.read_text())['detector_drop_rate'] == 0.0
  assert 'detector_kgnn2d' in simulated_detector.format_summary(results)
