"""Every registered category besides the car, end to end: render, train, plot.

A category is one file in `occnet_jax/categories/`. For each other one with
a `Synthesis`, the `car_render` builder renders its `<name>_mini` config,
the `test` config (with `config.category` and the builder config
overridden) trains and evaluates on it, and the evaluation writes its
plots: nothing else names the category.
"""

import json
import os

import ml_collections
import numpy as np
import pytest

from data_prep import builders
from occnet_jax import categories
from occnet_jax import geometry
from occnet_jax import input_pipeline
from occnet_jax import labels
from occnet_jax import train
from occnet_jax import workdir as workdir_lib
from occnet_jax.configs import test as test_config
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import outputs

OTHER_CATEGORIES = [
    name for name in categories.names()
    if name != 'car' and categories.get_category(name).synthesis is not None]


@pytest.fixture(scope='module', params=OTHER_CATEGORIES)
def rendered(request, tmp_path_factory):
  """(category, config) of the test config on its rendered `_mini` set.

  Independent of the module seed, so a seed soak renders each set once.
  """
  category = categories.get_category(request.param)
  config = test_config.get_config()
  config.category = category.name
  config.data.builder_config = f'{category.name}_mini'
  config.data.data_dir = str(tmp_path_factory.mktemp('tfds'))
  config.train.num_steps = config.train.eval_every_steps = 4
  config.train.checkpoint_every_steps = config.train.log_every_steps = 4
  config.train.heatmap_steps = config.train.graph_steps = 1
  config.eval.noise_sigmas, config.eval.box_jitter = (0.0,), ()
  builders.register(config.data.name)
  input_pipeline.prepare_dataset(config, config.data.data_dir)
  return category, config


@pytest.fixture(scope='module')
def trained(rendered, tmp_path_factory, module_seed):
  """(category, config, workdir) of a test-config run on its rendered set."""
  category, config = rendered
  config = ml_collections.ConfigDict(config.to_dict())
  config.seed = module_seed % 2**31
  workdir = str(tmp_path_factory.mktemp('workdir'))
  train.train_and_evaluate(config, workdir)
  return category, config, workdir


def test_rendered_records_hold_the_category(rendered):
  category, config = rendered
  source = input_pipeline.get_source(config, 'train', config.data.data_dir)
  k = category.num_keypoints
  mirror = np.array([1.0, 1.0, -1.0])
  for example in source:
    shape = np.asarray(example['shape_3d'])
    assert shape.shape == (k, 3)
    np.testing.assert_allclose(shape[list(category.mirror)], shape * mirror,
                               atol=1e-5)
    pixels, depth = geometry.project(np.asarray(example['cameras']),
                                     shape[None])
    np.testing.assert_allclose(example['keypoints'], pixels, atol=2e-2)
    assert np.all(np.asarray(depth) > 0)
  visibility = np.stack([np.asarray(example['visibility'])
                         for example in source])
  # A lone model occludes some of its own keypoints, not all.
  assert 0 < np.mean(visibility == labels.Visibility.VISIBLE) < 1


def test_training_evaluates_by_the_category_levels(trained):
  category, config, workdir = trained
  with open(outputs.metrics_path(workdir, config.eval.final_split)) as file:
    results = json.load(file)
  assert results['step'] == config.train.num_steps
  levels = {n for n in range(category.num_keypoints + 1)
            if metric_keys.count(f'occluded_{n}') in results}
  assert levels == set(category.occlusion_levels)
  assert max(levels) == category.num_keypoints - 3
  assert sum(results[metric_keys.count(f'occluded_{n}')] for n in levels) <= (
      results[metric_keys.count('occluded')])
  for method in evaluate.METHODS:
    curve = [results[metric_keys.pck(method, 'all', alpha)]
             for alpha in config.eval.alphas]
    assert all(0.0 <= value <= 1.0 for value in curve)
    assert curve == sorted(curve)
  basis = np.load(os.path.join(workdir, workdir_lib.SHAPE_BASIS_FILE))
  assert basis['mean'].shape == (category.num_keypoints, 3)


def test_evaluation_plots_the_category(trained):
  _, config, workdir = trained
  directory = os.path.dirname(outputs.metrics_path(workdir,
                                                    config.eval.final_split))
  plots = [name for name in os.listdir(directory) if name.endswith('.png')]
  assert {'pck_vs_alpha.png', 'pck_vs_invisible.png', 'gallery.png'} <= set(
      plots)
  for name in plots:
    assert os.path.getsize(os.path.join(directory, name)) > 1000, name
