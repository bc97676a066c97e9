"""User errors of the commands: one line `error: ...`, no traceback.

The runner (`occnet_jax.cli`) is tested in-process on fresh flags; the
library errors it prints are tested where they are raised; a few real entry
points run as subprocesses to check the wiring. Those fail before any
dataset build, restore or compilation, so they only pay for their imports,
and they all start at once (a module fixture).
"""

import json
import logging
import os
import subprocess
import sys

from absl import app
from absl import flags
import cv2
from ml_collections import config_flags
import ml_collections
import numpy as np
import pytest

from occnet_jax import cli
from occnet_jax import configs
from occnet_jax import errors
from occnet_jax import input_pipeline
from occnet_jax import predict
from occnet_jax import shape_basis
import fake_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_line_error(status, stderr, expected_status):
  """The message of a command that failed with one `error:` line."""
  lines = [line for line in stderr.splitlines() if line.strip()]
  assert status == expected_status, stderr
  assert 'Traceback' not in stderr and 'helpshort' not in stderr, stderr
  assert [line for line in lines if line.startswith('error: ')] == [
      lines[-1]], stderr
  return lines[-1].removeprefix('error: ')


def parse(capsys, argv, config_file='occnet_jax/configs/test.py'):
  """`cli._parse_command_line` on fresh flags: (exit status, stderr)."""
  flag_values = flags.FlagValues()
  argv = ['command', f'--config={config_file}', *argv]
  config_flags.DEFINE_config_file('config', flag_values=flag_values,
                                  sys_argv=argv)
  flags.DEFINE_integer('count', 1, 'A number.', lower_bound=0,
                       flag_values=flag_values)
  with pytest.raises(SystemExit) as exit_info:
    cli._parse_command_line(argv, flag_values)
  return exit_info.value.code, capsys.readouterr().err


def test_unknown_config_key(capsys):
  message = one_line_error(*parse(capsys, ['--config.train.num_stepz=3']), 2)
  assert message.startswith(
      "--config.train.num_stepz=3: unknown config key 'num_stepz' (did you "
      'mean "num_steps"')


def test_missing_config_file(capsys):
  message = one_line_error(*parse(capsys, [], 'no/such/config.py'), 2)
  assert message.startswith('--config: ') and 'no/such/config.py' in message


def test_bad_flag_value(capsys):
  message = one_line_error(*parse(capsys, ['--count=-1']), 2)
  assert '--count=-1' in message


def test_good_command_line_parses():
  flag_values = flags.FlagValues()
  argv = ['command', '--config=occnet_jax/configs/test.py',
          '--config.train.num_steps=5', 'extra']
  holder = config_flags.DEFINE_config_file('config', flag_values=flag_values,
                                           sys_argv=argv)
  assert cli._parse_command_line(argv, flag_values) == ['command', 'extra']
  assert holder.value.train.num_steps == 5


def _raising(error):
  def main(argv):
    del argv
    raise error
  return main


@pytest.mark.parametrize('error, status, message', [
    (configs.ConfigError('config.a = 1: bad.'), 2, 'config.a = 1: bad.'),
    (app.UsageError('Unexpected arguments: [x]'), 2,
     'Unexpected arguments: [x]'),
    (predict.PredictionInputError('image.jpg is incomplete.'), 1,
     'image.jpg is incomplete.'),
    (FileNotFoundError(2, 'No such file or directory', 'a/b.npy'), 1,
     'a/b.npy: No such file or directory'),
])
def test_user_errors_exit_with_one_line(capsys, error, status, message):
  with pytest.raises(SystemExit) as exit_info:
    cli._run_main(_raising(error), ['command'])
  assert one_line_error(exit_info.value.code, capsys.readouterr().err,
                        status) == message


def test_bugs_keep_their_traceback():
  with pytest.raises(ZeroDivisionError):
    cli._run_main(_raising(ZeroDivisionError('bug')), ['command'])


def _record(pathname, level, message):
  return logging.LogRecord('name', level, pathname, 1, message, (), None)


@pytest.mark.parametrize('pathname, level, message, kept', [
    ('/venv/site-packages/jax/_src/xla_bridge.py', logging.INFO,
     "Unable to initialize backend 'tpu'", False),
    ('/venv/site-packages/orbax/checkpoint/checkpoint_manager.py',
     logging.WARNING, 'CheckpointManagerOptions.read_only=True, setting max_to_keep=None.',
     False),
    ('/venv/site-packages/orbax/checkpoint/checkpoint_manager.py',
     logging.WARNING, 'Waiting for previous save to complete took 1.7 seconds.', False),
    ('/venv/dist-packages/tensorflow_datasets/core/builder.py',
     logging.WARNING,
     'Variant folder /x has no dataset_info.json', False),
    ('/venv/site-packages/grain/_src/reader.py', logging.INFO, 'Reading.',
     False),
    ('/venv/site-packages/orbax/checkpoint/checkpoint_manager.py',
     logging.WARNING, 'Unable to find the step 2 for deletion.', True),
    ('/venv/site-packages/jax/_src/compiler.py', logging.ERROR, 'Failed.',
     True),
    ('/home/me/jax/occnet_jax/train.py', logging.INFO, 'step 2/8', True),
])
def test_library_noise_is_dropped(pathname, level, message, kept):
  assert cli._LibraryNoiseFilter().filter(
      _record(pathname, level, message)) == kept


def test_missing_dataset_and_unknown_split(tmp_path, fake_data_dir):
  with pytest.raises(input_pipeline.DataError) as error:
    input_pipeline.open_split(fake_data.NAME, 'train', str(tmp_path))
  assert str(error.value).startswith(f'fake_cars is not built in {tmp_path}')
  assert len(str(error.value).splitlines()) == 1
  with pytest.raises(input_pipeline.DataError,
                     match=r"Unknown split 'valid'.*'validation'"):
    input_pipeline.open_split(fake_data.NAME, 'valid', fake_data_dir)
  assert len(input_pipeline.open_split(fake_data.NAME, 'validation',
                                       fake_data_dir)) > 0


def test_unknown_dataset_names_no_other_dataset(tmp_path):
  config = ml_collections.ConfigDict(
      {'data': {'name': 'car_rendr', 'builder_config': 'small',
                'crop_size': 64}})
  with pytest.raises(input_pipeline.DataError) as error:
    input_pipeline.prepare_dataset(config, str(tmp_path))
  assert len(str(error.value).splitlines()) == 1
  assert 'car_rendr/small is not built' in str(error.value)


def test_shape_file_errors_are_user_errors(tmp_path):
  with pytest.raises(errors.UserError, match='none.npy'):
    shape_basis.load_shapes(str(tmp_path / 'none.npy'))


@pytest.fixture(scope='module')
def commands(tmp_path_factory):
  """Real entry points run at once: name -> (status, stderr, stdout)."""
  tmp = tmp_path_factory.mktemp('cli')
  (tmp / 'a_file').write_text('not a directory')
  (tmp / 'empty').mkdir()
  image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), np.uint8)
  cv2.imwrite(str(tmp / 'full.jpg'), image)
  data = (tmp / 'full.jpg').read_bytes()
  (tmp / 'truncated.jpg').write_bytes(data[:len(data) // 4])
  (tmp / 'coco3.json').write_text(json.dumps([{'bbox': [1, 2, 3]}]))
  config = '--config=occnet_jax/configs/test.py'
  predict_command = ('launch.predict', f'--workdir={tmp / "empty"}',
                     f'--boxes={tmp / "coco3.json"}')
  cases = {
      'unknown_key': ('launch.train', config, f'--workdir={tmp / "w"}',
                      '--config.train.num_stepz=3'),
      'workdir_is_a_file': ('launch.train', config,
                            f'--workdir={tmp / "a_file"}'),
      'truncated_image': (*predict_command, f'--image={tmp / "truncated.jpg"}'),
      'coco_bbox_of_three': (*predict_command, f'--image={tmp / "full.jpg"}'),
      'wrong_data_dir': ('data_prep.dataset_report',
                         '--dataset=car_render/small',
                         f'--data_dir={tmp / "empty"}'),
      'predict_help': ('launch.predict', '--helpshort'),
  }
  env = {**os.environ, 'PYTHONPATH': ROOT}
  running = {
      name: subprocess.Popen([sys.executable, '-m', *command], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
      for name, command in cases.items()}
  results = {}
  for name, process in running.items():
    stdout, stderr = process.communicate(timeout=600)
    results[name] = (process.returncode, stderr, stdout)
  results['tmp'] = tmp
  return results


def test_commands_unknown_config_key(commands):
  status, stderr, _ = commands['unknown_key']
  assert one_line_error(status, stderr, 2).startswith(
      "--config.train.num_stepz=3: unknown config key 'num_stepz'")


def test_commands_workdir_that_is_a_file(commands):
  status, stderr, _ = commands['workdir_is_a_file']
  assert one_line_error(status, stderr, 2).endswith(
      '--workdir names a file, not a directory')
  assert (commands['tmp'] / 'a_file').read_text() == 'not a directory'


def test_commands_predict_inputs(commands):
  # Both fail before the (empty) workdir is read: inputs are checked first.
  status, stderr, _ = commands['truncated_image']
  assert 'truncated.jpg is not a readable image file, or is incomplete' in (
      one_line_error(status, stderr, 1))
  status, stderr, _ = commands['coco_bbox_of_three']
  assert one_line_error(status, stderr, 1).startswith(
      'Box 0 is not four numbers "bbox" [x, y, width, height]')


def test_commands_wrong_data_dir(commands):
  status, stderr, _ = commands['wrong_data_dir']
  message = one_line_error(status, stderr, 1)
  assert message.startswith('car_render/small is not built in')
  assert 'tfds build data_prep/car_render --config=small' in message


def test_commands_predict_help_documents_the_boxes_formats(commands):
  _, stderr, stdout = commands['predict_help']  # absl's --help exits 1.
  assert 'Traceback' not in stderr, stderr
  text = ' '.join(stdout.split())
  for fragment in ('[x0, y0, x1, y1]', '{"box": [x0, y0, x1, y1]}',
                   '{"bbox": [x, y, width, height]}', '--score_threshold',
                   '--step'):
    assert fragment in text, fragment
