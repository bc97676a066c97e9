"""The evaluation figures: titles, colours, legends and ticks."""

from matplotlib import colors as colors_lib
import numpy as np
import pytest

from occnet_jax.categories import car as car_lib
from occnet_jax.evaluation import colours
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import multiview
from occnet_jax.evaluation import plots

ALPHAS = (0.05, 0.1, 0.2)
SIGMAS = (0.0, 0.1)
LEVELS = (3, 4, 6)
TITLE = plots.caption('validation', 1234)


@pytest.fixture(scope='module')
def rng():
  seed = np.random.SeedSequence().entropy % 2**32
  print(f'seed = {seed}')
  return np.random.default_rng(seed)


@pytest.fixture(scope='module')
def results(rng):
  values = {'step': 1234}
  for method in evaluate.METHODS:
    for level in LEVELS:
      for alpha in ALPHAS + (0.1, 0.2):
        values[metric_keys.pck(method, f'occluded_{level}', alpha)] = float(
            rng.uniform())
    for sigma in SIGMAS:
      values[metric_keys.robustness(method, sigma)] = float(rng.uniform())
  for method in evaluate.MULTIVIEW_METHODS:
    for n in multiview.VIEW_COUNTS:
      values[metric_keys.multiview(method, n)] = float(rng.uniform(0, 12))
  return values


@pytest.fixture(scope='module')
def predictions(rng):
  num, size, k = 3, 32, car_lib.CAR.num_keypoints
  boxes = np.tile(np.array([[10.0, 20.0, 74.0, 84.0]]), (num, 1))
  visibility = rng.integers(0, 3, (num, k))
  return {
      'crops': rng.integers(0, 256, (num, size, size, 3), np.uint8),
      'boxes': boxes,
      'keypoints': rng.uniform(12, 72, (num, k, 2)),
      'visibility': visibility,
      'heatmap': rng.uniform(12, 72, (num, k, 2)),
      'kgnn2d': rng.uniform(12, 72, (num, k, 2)),
      'occlusion_score': rng.uniform(size=(num, k)),
      'occlusion.heatmap': rng.normal(size=(num, k)),
      'occlusion.kgnn2d': rng.normal(size=(num, k)),
      'car_id': np.array([f'car/{i}' for i in range(num)]),
  }


def _rgb(colour):
  return colors_lib.to_rgb(colour)


def _figures(results, predictions, tmp_path):
  return {
      'pck_vs_alpha': plots.pck_vs_alpha(
          results, ALPHAS, LEVELS, 12, str(tmp_path / 'a.png'), title=TITLE),
      'pck_vs_invisible': plots.pck_vs_invisible(
          results, LEVELS, str(tmp_path / 'b.png'), title=TITLE),
      'occlusion_roc': plots.occlusion_roc(
          predictions, str(tmp_path / 'c.png'), title=TITLE),
      'robustness': plots.robustness(
          results, SIGMAS, str(tmp_path / 'd.png'), title=TITLE),
      'multiview': plots.multiview_correspondences(
          results, multiview.VIEW_COUNTS, str(tmp_path / 'e.png'),
          title=TITLE),
      'gallery': plots.gallery(predictions, car_lib.CAR,
                               str(tmp_path / 'f.png'), title=TITLE),
  }


@pytest.fixture(scope='module')
def figures(results, predictions, tmp_path_factory):
  return _figures(results, predictions, tmp_path_factory.mktemp('plots'))


def _titles(figure):
  texts = [axis.get_title() for axis in figure.axes]
  if figure._suptitle is not None:  # pylint: disable=protected-access
    texts.append(figure._suptitle.get_text())  # pylint: disable=protected-access
  return ' '.join(texts)


def test_every_title_names_split_and_step(figures):
  for name, figure in figures.items():
    assert 'validation split, checkpoint step 1234' in _titles(figure), name


def test_method_lines_use_their_colour_only(figures):
  for name in ('pck_vs_alpha', 'pck_vs_invisible', 'robustness',
               'multiview'):
    for axis in figures[name].axes:
      for line in axis.get_lines():
        label = line.get_label()
        for method, method_label in plots.METHOD_LABELS.items():
          if label == method_label:
            assert _rgb(line.get_color()) == _rgb(colours.COLOURS[method])


def test_colours_have_one_meaning():
  used = [_rgb(colour) for colour in colours.COLOURS.values()]
  assert len(set(used)) == len(used)


def test_visibility_colours_only_mean_visibility(figures):
  visibility = {_rgb(colours.COLOURS['visible']),
                _rgb(colours.COLOURS['occluded'])}
  for name, figure in figures.items():
    for axis in figure.axes:
      for line in axis.get_lines():
        assert _rgb(line.get_color()) not in visibility, name
  histogram = figures['occlusion_roc'].axes[0]
  legend = {text.get_text(): _rgb(handle.get_facecolor())
            for text, handle in zip(histogram.get_legend().get_texts(),
                                    histogram.get_legend().legend_handles)}
  assert legend == {'Occluded': _rgb(colours.COLOURS['occluded']),
                    'Visible': _rgb(colours.COLOURS['visible'])}


def test_count_axes_have_integer_ticks(figures):
  for axis in figures['pck_vs_invisible'].axes:
    ticks = axis.get_xticks()
    assert len(ticks) > 1
    np.testing.assert_array_equal(ticks, np.round(ticks))
  histogram = figures['occlusion_roc'].axes[0]
  ticks = histogram.get_yticks()
  np.testing.assert_array_equal(ticks, np.round(ticks))


def test_gallery_shows_ground_truth_and_predictions_with_a_legend(
    figures, predictions):
  figure = figures['gallery']
  [legend] = figure.legends
  labels = [text.get_text() for text in legend.get_texts()]
  assert labels == ['Ground truth, visible', 'Ground truth, occluded',
                    'Heatmap (baseline)', '2D-KGNN, predicted visible',
                    '2D-KGNN, predicted occluded']
  first = figure.axes[0]
  labelled = predictions['visibility'][0] > 0
  # Ground-truth rings: one per labelled keypoint, at the label (crop
  # pixels: the 64 px box maps onto the 32 px crop).
  rings = first.collections[0]
  expected = (predictions['keypoints'][0][labelled] - [10, 20]) / 64 * 32
  np.testing.assert_allclose(rings.get_offsets(), expected)
  occluded = predictions['visibility'][0][labelled] == plots.OCCLUDED
  edge = [_rgb(colours.COLOURS['occluded' if o else 'visible'])
          for o in occluded]
  np.testing.assert_allclose(rings.get_edgecolors()[:, :3], edge)


def test_study_and_ablation_titles_name_split_and_steps(results, tmp_path):
  alphas = [0.05, 0.1, 0.2]
  study = plots.trifocal_labels(
      {'dataset': 'car_render/small', 'split': 'test', 'alphas': alphas,
       'fraction_within': [0.2, 0.5, 0.9],
       'fraction_within_noise_free': [1.0, 1.0, 1.0],
       'noise_model': {'sigma_visible': 0.01, 'sigma_occluded': 0.05,
                       'mirror_swap_rate': 0.05}, 'fraction_at_0.1': 0.5},
      str(tmp_path / 'study.png'), headline_alpha=0.1, paper_fraction=0.9)
  assert 'car_render/small test split' in _titles(study)
  runs = {'demo': results, 'no_encoder': {**results, 'step': 99}}
  figure = plots.ablations(runs, LEVELS, str(tmp_path / 'ablations.png'),
                           split='test')
  assert 'test split' in _titles(figure)
  [axis] = figure.axes
  assert [text.get_text() for text in axis.get_legend().get_texts()] == [
      'demo (step 1234)', 'no_encoder (step 99)']
