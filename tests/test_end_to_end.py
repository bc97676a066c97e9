"""train -> evaluate -> predict on the `test` config and a tiny dataset."""

import json
import os
import shutil

import cv2
import jax
import numpy as np
import pytest

from occnet_jax import checkpointing
from occnet_jax import evaluate
from occnet_jax import geometry
from occnet_jax import predict
from occnet_jax import train
from occnet_jax import workdir as workdir_lib
from occnet_jax.configs import test as test_config
import fake_data

PLOTS = ('pck_vs_alpha.png', 'pck_vs_invisible.png', 'occlusion_roc.png',
         'robustness.png', 'gallery.png', 'multiview.png')


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  fake_data.make_dataset(data_dir, num_views=3)
  config = test_config.get_config()
  config.data.name, config.data.builder_config = fake_data.NAME, ''
  config.data.data_dir = data_dir
  workdir = str(tmp_path_factory.mktemp('workdir'))
  train.train_and_evaluate(config, workdir)
  return workdir


def test_training_leaves_checkpoint_metrics_and_plots(workdir):
  config = workdir_lib.load_config(workdir)
  directory = os.path.join(workdir, 'eval', config.eval.split)
  with open(os.path.join(directory, 'metrics.json')) as file:
    results = json.load(file)
  for method in evaluate.METHODS:
    for subset in ('all', 'visible', 'occluded', *(
        f'occluded_{n}' for n in range(3, 10))):
      for alpha in ('0.05', '0.1', '0.15', '0.2', '0.25', '0.3'):
        value = results[f'pck.{method}.{subset}.{alpha}']
        assert value is None or 0.0 <= value <= 1.0
    # PCK grows with alpha.
    curve = [results[f'pck.{method}.all.{a}'] for a in config.eval.alphas]
    assert curve == sorted(curve)
    # Noise 0 feeds the heatmap keypoints unchanged: the plain PCK@0.1.
    assert results[f'robustness.{method}.0.0'] == pytest.approx(
        results[f'pck.{method}.all.0.1'])
  for method in evaluate.OCCLUSION_METHODS:
    assert 0.0 <= results[f'occlusion_auc.{method}'] <= 1.0
  assert (results['count.visible'] + results['count.occluded']
          == results['count.all'] > 0)
  assert sum(results[f'count.occluded_{n}'] for n in range(3, 10)) <= (
      results['count.occluded'])
  # Every view of the 6 test cars (3 views each) is an instance.
  assert results['num_instances'] == 18 and results['num_cars'] == 6
  assert results['step'] == config.train.num_steps
  for name in PLOTS:
    assert os.path.getsize(os.path.join(directory, name)) > 1000, name
  with open(os.path.join(workdir, workdir_lib.METRICS_FILE)) as file:
    last = json.loads(file.read().splitlines()[-1])
  assert last['step'] == config.train.num_steps
  with open(os.path.join(workdir, workdir_lib.RUN_FILE)) as file:
    [segment] = json.load(file)['segments']
  assert segment['steps'] == [0, config.train.num_steps]
  assert segment['train_seconds'] > 0 and segment['eval_seconds'] > 0
  assert segment['machine']['num_devices'] == jax.device_count()



def test_restore_falls_back_past_a_damaged_checkpoint(workdir, tmp_path,
                                                     caplog):
  copy = shutil.copytree(workdir, tmp_path / 'workdir')
  config = workdir_lib.load_config(copy)
  last = config.train.num_steps
  manifest = copy / workdir_lib.CHECKPOINT_DIR / str(last) / 'state' / (
      'manifest.ocdbt')
  data = bytearray(manifest.read_bytes())
  data[len(data) // 2] ^= 0xFF
  manifest.write_bytes(bytes(data))
  *_, step = workdir_lib.restore_workdir(copy)
  assert step == last - config.train.checkpoint_every_steps
  assert f'checkpoint of step {last} in' in caplog.text
  with pytest.raises(checkpointing.CheckpointError, match=f'step {last}: '):
    workdir_lib.restore_workdir(copy, last)
  # A reader never moves anything.
  assert manifest.exists()


def test_evaluate_other_split_and_step(workdir):
  results = workdir_lib.evaluate_workdir(workdir, split='validation', step=6)
  assert results['step'] == 6 and results['num_cars'] == 4
  assert os.path.exists(evaluate.metrics_path(workdir, 'validation'))
  with pytest.raises(FileNotFoundError, match='step 5'):
    workdir_lib.evaluate_workdir(workdir, split='validation', step=5)


def test_predict_on_a_full_image(workdir, tmp_path):
  seed = np.random.SeedSequence().entropy % 2**32
  print(f'seed = {seed}')
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 256, (120, 200, 3), np.uint8)
  image_path = str(tmp_path / 'street.png')
  cv2.imwrite(image_path, image)
  good = [[10.5, 20.0, 90.0, 70.0], {'bbox': [100, 30, 60, 50], 'score': 1}]
  bad = [[300, 300, 400, 400], [0, 0, 0, 0], [50, 50, 50, 80]]
  boxes_path = tmp_path / 'boxes.json'
  boxes_path.write_text(json.dumps(good + bad))
  output = str(tmp_path / 'out' / 'street')
  cars = predict.predict_files(workdir, image_path, str(boxes_path), output)

  assert len(cars) == 2
  with open(f'{output}.json') as file:
    written = json.load(file)
  assert written['cars'] == cars
  for car in cars:
    points = np.asarray(car['keypoints_2d'])
    assert points.shape == (12, 3) and np.all((0 <= points[:, 2])
                                              & (points[:, 2] <= 1))
    # The 3x4 pixel camera maps the 3D keypoints onto their projection.
    projected, depth = geometry.project(
        np.asarray(car['camera']['matrix']),
        np.asarray(car['keypoints_3d']))
    assert np.all(np.asarray(depth) > 0)
    np.testing.assert_allclose(projected, car['keypoints_3d_projected'],
                               rtol=1e-3, atol=1e-2)
  with open(f'{output}.coco.json') as file:
    coco = json.load(file)
  assert [len(result['keypoints']) for result in coco] == [36, 36]
  assert set(coco[0]['keypoints'][2::3]) <= {1, 2}
  assert cv2.imread(f'{output}.png').shape == image.shape

  # Keypoints-in mode: the external detector's keypoints replace the head.
  keypoints_path = tmp_path / 'keypoints.json'
  external = np.concatenate([rng.uniform(20, 60, (2, 12, 2)),
                             rng.uniform(0, 1, (2, 12, 1))], -1)
  keypoints_path.write_text(json.dumps(
      np.concatenate([external, np.zeros((3, 12, 3))]).tolist()))
  cars_in = predict.predict_files(workdir, image_path, str(boxes_path),
                                  output, str(keypoints_path))
  assert len(cars_in) == 2
  assert not np.allclose(cars_in[0]['keypoints_2d'], cars[0]['keypoints_2d'])


def test_predict_rejects_bad_inputs_cleanly(workdir, tmp_path):
  not_image = tmp_path / 'notes.png'
  not_image.write_text('not an image')
  boxes_path = tmp_path / 'boxes.json'
  boxes_path.write_text('[[0, 0, 10, 10]]')
  with pytest.raises(predict.PredictionInputError, match='not a readable'):
    predict.predict_files(workdir, str(not_image), str(boxes_path),
                          str(tmp_path / 'out'))
  image_path = str(tmp_path / 'image.png')
  cv2.imwrite(image_path, np.zeros((40, 60, 3), np.uint8))
  boxes_path.write_text('[[0, 0, "a"]]')
  with pytest.raises(predict.PredictionInputError, match='Box 0'):
    predict.predict_files(workdir, image_path, str(boxes_path),
                          str(tmp_path / 'out'))
  boxes_path.write_text('[[100, 100, 120, 130], [5, 5, 5, 5]]')
  assert predict.predict_files(workdir, image_path, str(boxes_path),
                               str(tmp_path / 'out')) == []
  assert json.loads((tmp_path / 'out.json').read_text())['cars'] == []
