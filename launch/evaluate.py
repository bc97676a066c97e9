r"""Evaluates a training workdir's checkpoint: metrics.json and plots.

    python -m launch.evaluate --workdir=workdirs/demo [--split=test] \
        [--step=N] [--data_dir=DIR] [--watch [--poll_seconds=10]]
    python -m launch.evaluate --workdir=workdirs/demo --simulated_detector \
        [--detector_sigma=0.02] [--detector_drop_rate=0.1]

Writes <workdir>/eval/<split>/metrics.json and the PNG figures; reads only
complete checkpoints, so it is safe while training is still running. With
--watch it is the evaluator job beside training instead: it evaluates each
new checkpoint once into <workdir>/eval/<split>/step_<N>/metrics.json and
TensorBoard scalars under <workdir>/eval/<split>/, and exits after the run's
last step (occnet_jax/evaluation/checkpoint_watcher.py). With
--simulated_detector the graph networks are also fed a simulated detector's
keypoints (the true visible ones, noisy, some dropped;
occnet_jax/evaluation/simulated_detector.py), written beside the heatmap-fed
figures to <workdir>/eval/<split>/simulated_detector/metrics.json. Several
processes take the flags of launch.train: --coordinator_address,
--num_processes, --process_id.
"""

from absl import app
from absl import flags
import jax

from launch import multihost_flags
from occnet_jax import cli
from occnet_jax.evaluation import checkpoint_watcher
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import simulated_detector
from occnet_jax.evaluation import workdir_evaluation

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training workdir.')
_SPLIT = flags.DEFINE_string(
    'split', None, "Split to evaluate (default: the config's eval.final_split).")
_STEP = flags.DEFINE_integer('step', None,
                             'Checkpoint step (default: the latest).')
_DATA_DIR = flags.DEFINE_string('data_dir', None,
                                "TFDS data dir (default: the config's).")
_WATCH = flags.DEFINE_bool(
    'watch', False, 'Evaluate every new checkpoint until the last step.')
_POLL_SECONDS = flags.DEFINE_float(
    'poll_seconds', 10.0, 'With --watch: pause between looks at the workdir.')
_SIMULATED_DETECTOR = flags.DEFINE_bool(
    'simulated_detector', False, 'Also feed the graph networks a simulated '
    "detector's keypoints (true visible ones + noise, some dropped).")
_DETECTOR_SIGMA = flags.DEFINE_float(
    'detector_sigma', simulated_detector.DEFAULT_SIGMA, 'Its noise, a '
    'fraction of max(box width, height) per coordinate.', lower_bound=0.0)
_DETECTOR_DROP_RATE = flags.DEFINE_float(
    'detector_drop_rate', simulated_detector.DEFAULT_DROP_RATE,
    'The fraction of visible keypoints it misses.', lower_bound=0.0,
    upper_bound=1.0)
flags.mark_flag_as_required('workdir')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  multihost_flags.initialize()
  if _WATCH.value and _SIMULATED_DETECTOR.value:
    raise app.UsageError('--simulated_detector evaluates one checkpoint; '
                         'drop --watch.')
  if _WATCH.value:
    if _STEP.value is not None:
      raise app.UsageError('--watch evaluates every new step; drop --step.')
    checkpoint_watcher.watch(_WORKDIR.value, split=_SPLIT.value,
                             data_dir=_DATA_DIR.value,
                             poll_seconds=_POLL_SECONDS.value)
    return
  if _SIMULATED_DETECTOR.value:
    results = simulated_detector.evaluate_workdir(
        _WORKDIR.value, split=_SPLIT.value, data_dir=_DATA_DIR.value,
        step=_STEP.value, sigma=_DETECTOR_SIGMA.value,
        drop_rate=_DETECTOR_DROP_RATE.value)
    if jax.process_index() == 0:
      print(simulated_detector.format_summary(results))
    return
  results = workdir_evaluation.evaluate_workdir(
      _WORKDIR.value, split=_SPLIT.value, data_dir=_DATA_DIR.value,
      step=_STEP.value)
  if jax.process_index() == 0:
    print(evaluate.format_summary(results))


if __name__ == '__main__':
  cli.run(main)
