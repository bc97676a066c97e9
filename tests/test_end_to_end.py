"""train -> evaluate -> predict on the `test` config and a tiny dataset.

The trained workdir is also evaluated and predicted from on gs://, a bucket
of a local GCS emulator (`gcp-storage-emulator`, started here): etils.epath
reaches it through its fsspec backend (gcsfs honours STORAGE_EMULATOR_HOST;
EPATH_USE_TF=false, as TensorFlow's own gs:// file system has a fixed
endpoint), Orbax's TensorStore through TENSORSTORE_GCS_HTTP_URL. The
workdir's files are also written through a proxy that fails every 4th
request with 503 (`blinking_store`), and to a store that stays down.
"""

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time

import cv2
from etils import epath
import gcsfs.retry
import jax
import numpy as np
import pytest

# Defines launch.train's absl flags; no other test imports a launch module.
from launch import train as train_command
from occnet_jax import checkpointing
from occnet_jax import geometry
from occnet_jax import predict
from occnet_jax import train
from occnet_jax import workdir as workdir_lib
from occnet_jax import workdir_lock
from occnet_jax import workdir_model
from occnet_jax.configs import test as test_config
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import outputs
from occnet_jax.evaluation import workdir_evaluation
import blinking_store
import checkpoint_damage
import fake_data

# The blinking store fails every BLINK_PERIOD-th request.
BLINK_PERIOD = 4
PLOTS = ('pck_vs_alpha.png', 'pck_vs_invisible.png', 'occlusion_roc.png',
         'robustness.png', 'gallery.png', 'multiview.png', 'box_jitter.png')


class _Records(logging.Handler):

  def __init__(self):
    super().__init__(logging.INFO)
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


@pytest.fixture(scope='module')
def logged_workdir(tmp_path_factory):
  """(workdir, the messages training logged)."""
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  fake_data.make_dataset(data_dir, num_views=3)
  config = test_config.get_config()
  config.data.name, config.data.builder_config = fake_data.NAME, ''
  config.data.data_dir = data_dir
  workdir = str(tmp_path_factory.mktemp('workdir'))
  logger, records = logging.getLogger('absl'), _Records()
  level = logger.level
  logger.setLevel(logging.INFO)
  logger.addHandler(records)
  try:
    train.train_and_evaluate(config, workdir)
  finally:
    logger.removeHandler(records)
    logger.setLevel(level)
  return workdir, records.messages


@pytest.fixture(scope='module')
def workdir(logged_workdir):
  return logged_workdir[0]


def test_training_says_it_compiles_and_lists_what_it_wrote(logged_workdir):
  workdir, messages = logged_workdir
  compiling = [index for index, message in enumerate(messages)
               if message.startswith('Compiling the train step')]
  first_step = [index for index, message in enumerate(messages)
                if message.startswith('step ')]
  assert len(compiling) == 1 and compiling[0] < first_step[0]
  paths = train_command.written_paths(workdir, 'test')
  assert {os.path.join(workdir, name) for name in (
      workdir_lib.CONFIG_FILE, workdir_lib.METRICS_FILE, workdir_lib.RUN_FILE,
      workdir_lib.SHAPE_BASIS_FILE)} | {
          os.path.join(workdir, 'checkpoints') + os.sep} <= set(paths)
  assert {os.path.join(workdir, 'eval', 'test', name)
          for name in PLOTS + ('metrics.json',)} <= set(paths)
  assert any('tfevents' in path for path in paths)
  assert all(os.path.exists(path) for path in paths)


def test_training_leaves_checkpoint_metrics_and_plots(workdir):
  config = workdir_lib.load_config(workdir)
  directory = os.path.join(workdir, 'eval', config.eval.final_split)
  with open(os.path.join(directory, 'metrics.json')) as file:
    results = json.load(file)
  for method in evaluate.METHODS:
    for subset in ('all', 'visible', 'occluded', *(
        f'occluded_{n}' for n in range(3, 10))):
      for alpha in ('0.05', '0.1', '0.15', '0.2', '0.25', '0.3'):
        value = results[metric_keys.pck(method, subset, alpha)]
        assert value is None or 0.0 <= value <= 1.0
    # PCK grows with alpha.
    curve = [results[metric_keys.pck(method, 'all', a)]
             for a in config.eval.alphas]
    assert curve == sorted(curve)
    low, high = results[metric_keys.interval(metric_keys.pck(method, 'all',
                                                             0.1))]
    assert low <= results[metric_keys.pck(method, 'all', 0.1)] <= high
    for subset in evaluate.OCCLUSION_KIND_SUBSETS:
      assert metric_keys.pck(method, subset, 0.1) in results
  for method in evaluate.YAW_METHODS:
    median = results[metric_keys.yaw_error(method, metric_keys.MEDIAN_DEG)]
    low, high = results[metric_keys.interval(
        metric_keys.yaw_error(method, metric_keys.MEDIAN_DEG))]
    assert 0.0 <= low <= median <= high <= 180.0
  for method in evaluate.PERTURBED_METHODS:
    # Noise 0 feeds the heatmap keypoints unchanged: the plain PCK@0.1.
    assert results[metric_keys.robustness(method, 0.0)] == pytest.approx(
        results[metric_keys.pck(method, 'all', 0.1)])
    for sigma in config.eval.box_jitter:
      assert 0.0 <= results[metric_keys.box_jitter(method, sigma)] <= 1.0
  # The sweep refits at the configured threshold: the same fit.
  for subset in evaluate.SWEEP_SUBSETS:
    for threshold in config.eval.encoder_fit_sweep:
      assert results[metric_keys.encoder_fit_sweep(subset, threshold)] == (
          results[metric_keys.pck('shape_fit_encoder', subset, 0.1)])
  # The gate raised to the model's own threshold is the model's gate: a
  # shut gate leaves a keypoint exactly at the heatmap's.
  for subset in evaluate.SWEEP_SUBSETS:
    for threshold in config.eval.decoder_gate_sweep:
      assert results[metric_keys.gate_sweep(subset, threshold)] == (
          results[metric_keys.pck('kgnn2d', subset, 0.1)])
  # Where the model's gate shut, the 2D-KGNN is the heatmap: its PCK on a
  # subset mixes the heatmap's where shut and its own where open.
  for subset in evaluate.GATE_OPEN_SUBSETS:
    opened = results[metric_keys.gate_open(subset)]
    if 0.0 < opened < 1.0:
      shut_heatmap = (results[metric_keys.pck('heatmap', subset, 0.1)]
                      - opened * results[metric_keys.gate_open_pck(
                          'heatmap', subset)]) / (1.0 - opened)
      assert results[metric_keys.pck('kgnn2d', subset, 0.1)] == (
          pytest.approx(opened * results[metric_keys.gate_open_pck(
              'kgnn2d', subset)] + (1.0 - opened) * shut_heatmap))
  # Labels are exact here: no PCK against labels is reported twice.
  assert not any(key.startswith('pck_labels.') for key in results)
  for method in evaluate.OCCLUSION_METHODS:
    assert 0.0 <= results[metric_keys.occlusion_auc(method)] <= 1.0
  assert (results[metric_keys.count('visible')]
          + results[metric_keys.count('occluded')]
          == results[metric_keys.count('all')] > 0)
  assert sum(results[metric_keys.count(f'occluded_{n}')]
             for n in range(3, 10)) <= results[metric_keys.count('occluded')]
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
  damaged = copy / workdir_lib.CHECKPOINT_DIR / str(last)
  checkpoint_damage.flip_a_byte(damaged)
  *_, step = workdir_model.restore_workdir(copy)
  assert step == last - config.train.checkpoint_every_steps
  assert f'checkpoint of step {last} in' in caplog.text
  with pytest.raises(checkpointing.CheckpointError, match=f'step {last}: '):
    workdir_model.restore_workdir(copy, last)
  # A reader never moves anything.
  assert damaged.exists()


def test_evaluate_other_split_and_step(workdir):
  results = workdir_evaluation.evaluate_workdir(workdir, split='validation',
                                                step=6)
  assert results['step'] == 6 and results['num_cars'] == 4
  assert os.path.exists(outputs.metrics_path(workdir, 'validation'))
  with pytest.raises(FileNotFoundError, match='step 5'):
    workdir_evaluation.evaluate_workdir(workdir, split='validation', step=5)


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
  # An integer image_id (pycocotools needs one), mapped to the file.
  image_id = predict.coco_image_id(image_path)
  assert {result['image_id'] for result in coco} == {image_id}
  assert isinstance(image_id, int) and written['image_id'] == image_id
  with open(f'{output}.coco_images.json') as file:
    assert json.load(file) == [{'id': image_id, 'file_name': 'street.png',
                                'width': 200, 'height': 120}]
  assert cv2.imread(f'{output}.png').shape == image.shape

  # --score_threshold keeps the cars at or above it; --step picks the
  # checkpoint.
  scores = sorted(predict.car_score(car) for car in cars)
  kept = predict.predict_files(workdir, image_path, str(boxes_path), output,
                               score_threshold=scores[1], image_id=7)
  assert [predict.car_score(car) for car in kept] == [scores[1]]
  with open(f'{output}.coco.json') as file:
    assert [result['image_id'] for result in json.load(file)] == [7]
  predict.predict_files(workdir, image_path, str(boxes_path), output, step=6)
  with open(f'{output}.json') as file:
    assert json.load(file)['step'] == 6

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


@pytest.fixture(scope='module')
def bucket():
  """A gs:// bucket on a local GCS emulator, for epath and TensorStore."""
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
  server = subprocess.Popen(
      [os.path.join(os.path.dirname(sys.executable), 'gcp-storage-emulator'),
       'start', '--host=127.0.0.1', f'--port={port}', '--in-memory',
       '--default-bucket=occnet', '--quiet'],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 60
  while True:
    try:
      socket.create_connection(('127.0.0.1', port), timeout=1).close()
      break
    except OSError:
      assert server.poll() is None and time.time() < deadline
      time.sleep(0.2)
  endpoint = f'http://127.0.0.1:{port}'
  with pytest.MonkeyPatch.context() as patch:
    for name, value in {
        'STORAGE_EMULATOR_HOST': endpoint, 'FSSPEC_GCS_TOKEN': 'anon',
        'EPATH_USE_TF': 'false',
        # gcsfs would first ask a gRPC control API for the bucket's layout.
        'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT': 'false',
        'TENSORSTORE_GCS_HTTP_URL': endpoint,
        'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'emulator'}.items():
      patch.setenv(name, value)
    # The emulator has no moveTo API (HTTP 501, Not Implemented), which
    # gcsfs tries first for every rename and retries for 33 s before it
    # falls back to copy and delete: 501 is not retried here.
    patch.setattr(gcsfs.retry, 'errs', gcsfs.retry.errs - {501, '501'})
    # epath caches whether it uses TensorFlow at its first path (a private
    # cache): read the environment again, and once more afterwards.
    tf_cache = epath.gpath._is_tf_installed  # pylint: disable=protected-access
    tf_cache.cache_clear()
    yield epath.Path('gs://occnet')
  tf_cache.cache_clear()
  server.kill()
  server.wait()


def _upload(local, remote):
  for directory, _, names in os.walk(local):
    for name in names:
      path = epath.Path(directory, name)
      target = remote / path.relative_to(local)
      target.parent.mkdir(parents=True, exist_ok=True)
      target.write_bytes(path.read_bytes())


def test_evaluate_and_predict_on_gcs(workdir, bucket, tmp_path, monkeypatch):
  # Nothing may land under the working directory (no local 'gs:' folder).
  monkeypatch.chdir(tmp_path)
  remote = bucket / 'runs' / 'e2e'
  _upload(workdir, remote)
  results = workdir_evaluation.evaluate_workdir(os.fspath(remote),
                                                split='validation')
  assert results['step'] == test_config.get_config().train.num_steps
  written = json.loads((remote / 'eval' / 'validation' /
                        'metrics.json').read_text())
  assert written['num_cars'] == results['num_cars'] == 4
  assert len(list((remote / 'eval' / 'validation').glob('*.png'))) == len(
      PLOTS)

  image = np.random.default_rng().integers(0, 256, (120, 200, 3), np.uint8)
  (remote / 'inputs').mkdir()
  (remote / 'inputs' / 'street.png').write_bytes(
      cv2.imencode('.png', image)[1].tobytes())
  (remote / 'inputs' / 'boxes.json').write_text('[[10, 20, 90, 70]]')
  output = remote / 'predict' / 'street'
  cars = predict.predict_files(
      os.fspath(remote), os.fspath(remote / 'inputs' / 'street.png'),
      os.fspath(remote / 'inputs' / 'boxes.json'), os.fspath(output))
  assert json.loads(epath.Path(f'{output}.json').read_text())['cars'] == cars
  overlay = cv2.imdecode(np.frombuffer(epath.Path(f'{output}.png')
                                       .read_bytes(), np.uint8), 1)
  assert overlay.shape == image.shape
  assert os.listdir(tmp_path) == []


def _write_workdir_files(remote):
  """Writes (and checks) every workdir file and a small checkpoint."""
  config = test_config.get_config()
  with workdir_lock.WorkdirLock(remote):
    with pytest.raises(workdir_lock.WorkdirLockedError, match=str(os.getpid())):
      with workdir_lock.WorkdirLock(remote):
        pass
    workdir_lib.save_config(config, remote)
    config.train.num_steps += 1
    workdir_lib.save_config(config, remote,
                            workdir_lib.config_changes(config, remote))
    assert workdir_lib.load_config(remote).train.num_steps == (
        config.train.num_steps)
    with workdir_lib.RunRecord(remote, 0) as record:
      with workdir_lib.MetricWriter(remote) as writer:
        for step in (1, 2, 3):
          writer.write(step, {'loss': float(step)})
      record.trained(3)
    with workdir_lib.MetricWriter(remote, 2) as writer:
      writer.write(3, {'loss': 3.5})
  assert not epath.Path(remote, workdir_lock.LOCK_FILE).exists()
  rows = epath.Path(remote, workdir_lib.METRICS_FILE).read_text().splitlines()
  assert [json.loads(row)['loss'] for row in rows] == [1.0, 2.0, 3.5]
  [segment] = json.loads(epath.Path(remote, workdir_lib.RUN_FILE).read_text())[
      'segments']
  assert segment['steps'] == [0, 3] and segment['finished']
  assert list(epath.Path(remote).glob('events.out.tfevents.*'))

  state = {'weights': np.arange(6.0, dtype=np.float32)}
  with checkpointing.Checkpointer(f'{remote}/checkpoints') as checkpointer:
    checkpointer.save(1, state, jax.random.key(1), {'iterator': {'i': 1}})
  with checkpointing.Checkpointer(f'{remote}/checkpoints',
                                  read_only=True) as reader:
    step, restored = reader.restore_newest(lambda step: reader.restore_state(
        step, jax.sharding.SingleDeviceSharding(jax.devices()[0])))
  assert step == 1
  np.testing.assert_array_equal(restored['weights'], state['weights'])


def test_workdir_files_on_gcs(bucket, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  _write_workdir_files(os.fspath(bucket / 'runs' / 'files'))
  assert os.listdir(tmp_path) == []


@contextlib.contextmanager
def _blinking(period):
  """The bucket's requests through a proxy failing every period-th one."""
  target = os.environ['STORAGE_EMULATOR_HOST'].removeprefix('http://')
  with (blinking_store.BlinkingStore(target, period) as store,
        pytest.MonkeyPatch.context() as patch):
    for name in ('STORAGE_EMULATOR_HOST', 'TENSORSTORE_GCS_HTTP_URL'):
      patch.setenv(name, store.endpoint)
    # gcsfs keeps one file system per arguments, with its endpoint.
    gcsfs.GCSFileSystem.clear_instance_cache()
    try:
      yield store
    finally:
      gcsfs.GCSFileSystem.clear_instance_cache()


def _no_backoff(monkeypatch):
  """gcsfs retries at once (its backoff waits seconds per failed request)."""
  sleep = asyncio.sleep
  monkeypatch.setattr(gcsfs.retry.asyncio, 'sleep',
                      lambda delay, *args: sleep(0, *args))


def test_workdir_files_on_a_blinking_store(bucket, tmp_path, monkeypatch):
  # Every 4th request fails with 503: gcsfs and TensorStore retry them (with
  # backoff; gcsfs's waits are cut here), and every file reads back whole.
  monkeypatch.chdir(tmp_path)
  _no_backoff(monkeypatch)
  with _blinking(BLINK_PERIOD) as store:
    _write_workdir_files(os.fspath(bucket / 'runs' / 'blinking'))
  assert store.failed > 0


def test_store_that_stays_down_is_one_error(bucket, tmp_path, monkeypatch):
  # A store that fails every request, past gcsfs's retries, is a StoreError naming the workdir and the last
  # checkpoint; the config it was rewriting stays whole.
  monkeypatch.chdir(tmp_path)
  remote = os.fspath(bucket / 'runs' / 'down')
  config = test_config.get_config()
  workdir_lib.save_config(config, remote)
  _no_backoff(monkeypatch)
  config.train.num_steps += 1
  with _blinking(1) as store:
    with pytest.raises(checkpointing.StoreError) as error:
      with checkpointing.storage_errors(remote, f'{remote}/checkpoints'):
        workdir_lib.save_config(config, remote)
  assert store.failed > 1
  message = str(error.value)
  assert remote in message and '503' in message, message
  assert 'Rerun the same command' in message, message
  assert workdir_lib.load_config(remote).train.num_steps == (
      config.train.num_steps - 1)
