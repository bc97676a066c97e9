"""Evaluation figures in the style of the paper (matplotlib, PNG).

Figures are built with `matplotlib.figure.Figure` directly (the Agg canvas,
no pyplot global state), so plotting works headless and from any thread.

  - `pck_vs_alpha.png`: PCK of occluded keypoints vs alpha, one panel per
    number of invisible keypoints (Figs. 5 and 8).
  - `pck_vs_invisible.png`: PCK vs the number of invisible keypoints at
    alpha 0.1 and 0.2 (Figs. 6 and 9).
  - `occlusion_roc.png`: ROC of telling occluded from visible keypoints,
    heatmap confidence vs 2D-KGNN encoder (Fig. 3).
  - `robustness.png`: PCK@0.1 vs input noise (Fig. 10).
  - `multiview.png`: multi-view correspondences per view subset vs number
    of views, ground-truth labels as the upper bound (Fig. 4 right).
  - `trifocal_labels.png` (`label_study.run_study`, not an evaluation
    figure): labelled occluded points within alpha of the trifocal
    transfer (Fig. 4 left).
  - `gallery.png`: ground truth and predictions on ROI crops (Fig. 11),
    with a legend: labelled keypoints as rings, heatmap keypoints as
    crosses, 2D-KGNN keypoints as dots on the skeleton (solid edges between
    two predicted-visible keypoints, dashed otherwise).

Every evaluation figure's title names the split and the checkpoint step
(its `caption`), and each colour has one meaning in every figure
(`colours.COLOURS`). Count axes have integer ticks.

`ablations` compares runs rather than methods: `report.py` draws it from
the demo's and its ablations' metrics.
"""

from collections.abc import Callable, Mapping, Sequence
import os
from typing import Any

from etils import epath
from matplotlib import figure as figure_lib
from matplotlib import lines as lines_lib
from matplotlib import ticker
import numpy as np

from occnet_jax import keypoints as keypoints_lib
from occnet_jax.evaluation import colours
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import multiview
from occnet_jax.evaluation import scores as scores_lib

METHOD_LABELS = {'heatmap': 'Heatmap (baseline)', 'kgnn2d': '2D-KGNN',
                 'kgnn3d': '3D-KGNN',
                 'shape_fit_confidence': 'Shape fit, confidence (baseline)',
                 'shape_fit_encoder': 'Shape fit, encoder (baseline)',
                 'oracle_fit': 'Oracle fit (upper reference)'}
# The paper's panels of Figs. 5/8; levels without data are replaced by
# populated ones (procedural cars are often occluded in even numbers).
ALPHA_PANELS_LEVELS = (3, 5, 7, 9)
OCCLUDED = 2


def _values(values: Sequence[Any]) -> np.ndarray:
  """Metric values as floats; None (no data) becomes NaN, a gap in a line."""
  return np.array([np.nan if v is None else v for v in values], float)


def _percent(values: Sequence[Any]) -> np.ndarray:
  return 100.0 * _values(values)


def caption(split: str, step: int) -> str:
  """What every evaluation figure's title says it shows."""
  return f'{split} split, checkpoint step {step}'


def _finish(figure: figure_lib.Figure, axis: Any, path: str, title: str, *,
            ylim: tuple[float, float | None] = (0, 100)) -> figure_lib.Figure:
  """The y range, grid, legend and title of a one-panel line plot; saves."""
  axis.set_ylim(*ylim)
  axis.grid(alpha=0.3)
  axis.legend()
  axis.set_title(title, fontsize=9)
  return _save(figure, path)


def _subplots(*args, figsize, **kwargs):
  figure = figure_lib.Figure(figsize=figsize)
  return figure, figure.subplots(*args, **kwargs)


def _save(figure: figure_lib.Figure, path: str,
          title: str | None = None) -> figure_lib.Figure:
  """Saves a figure (with `title` above all its panels); returns it."""
  if title:
    figure.suptitle(title, fontsize=10)
  figure.tight_layout()
  with epath.Path(path).open('wb') as file:
    figure.savefig(file, format='png', dpi=100)
  return figure


def _integer_ticks(axis: Any) -> None:
  axis.set_major_locator(ticker.MaxNLocator(integer=True))


def alpha_panel_levels(populated: Sequence[int]) -> list[int]:
  """Up to four occlusion levels to plot, the paper's first."""
  preferred = [level for level in ALPHA_PANELS_LEVELS if level in populated]
  others = [level for level in populated if level not in preferred]
  return sorted((preferred + others)[:len(ALPHA_PANELS_LEVELS)])


def pck_vs_alpha(results: Mapping[str, Any], alphas: Sequence[float],
                 levels: Sequence[int], num_keypoints: int, path: str, *,
                 title: str) -> figure_lib.Figure:
  """PCK of occluded keypoints vs alpha per occlusion level (Figs. 5/8)."""
  levels = alpha_panel_levels(levels) or list(ALPHA_PANELS_LEVELS)
  figure, axes = _subplots(1, len(levels), figsize=(4 * len(levels), 3.4),
                           sharey=True, squeeze=False)
  axes = axes[0]
  for axis, level in zip(axes, levels):
    for method, label in METHOD_LABELS.items():
      values = [results.get(metric_keys.pck(method, f'occluded_{level}', a))
                for a in alphas]
      axis.plot(alphas, _percent(values), 'o-', label=label,
                color=colours.COLOURS[method])
    axis.set_title(f'Number of invisible points = {level}/{num_keypoints}')
    axis.set_xlabel('Alpha (α)')
    axis.set_xlim(0, max(alphas))
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
  axes[0].set_ylabel('PCK (in %)')
  axes[0].legend(loc='lower right')
  return _save(figure, path, f'PCK of occluded keypoints, {title}')


def pck_vs_invisible(results: Mapping[str, Any], levels: Sequence[int],
                     path: str, *, title: str) -> figure_lib.Figure:
  """PCK of occluded keypoints vs number of invisible ones (Figs. 6/9)."""
  figure, axes = _subplots(1, 2, figsize=(8, 3.4))
  for axis, alpha in zip(axes, (0.1, 0.2)):
    for method, label in METHOD_LABELS.items():
      values = [results.get(metric_keys.pck(method, f'occluded_{level}',
                                            alpha)) for level in levels]
      axis.plot(levels, _percent(values), 'o-', label=label,
                color=colours.COLOURS[method])
    axis.set_title(f'Alpha α = {alpha:g}')
    axis.set_xlabel('Number of invisible points')
    _integer_ticks(axis.xaxis)
    axis.set_ylabel('PCK (in %)')
    axis.grid(alpha=0.3)
  axes[0].legend(loc='lower left')
  return _save(figure, path, f'PCK of occluded keypoints, {title}')


def occlusion_roc(predictions: Mapping[str, np.ndarray], path: str, *,
                  title: str) -> figure_lib.Figure:
  """Occlusion ROC of the heatmap confidence and the 2D-KGNN (Fig. 3)."""
  visibility = predictions['visibility']
  labelled, occluded = visibility > 0, visibility == OCCLUDED
  figure, (histogram, roc) = _subplots(1, 2, figsize=(8, 3.4))
  confidence = -predictions['occlusion.heatmap']
  for mask, label, colour in (
      (labelled & occluded, 'Occluded', colours.COLOURS['occluded']),
      (labelled & ~occluded, 'Visible', colours.COLOURS['visible'])):
    histogram.hist(confidence[mask], bins=30, alpha=0.6, label=label,
                   color=colour)
  histogram.set_xlabel('Heatmap confidence')
  histogram.set_ylabel('Number of points')
  _integer_ticks(histogram.yaxis)
  histogram.set_title('Keypoint confidence scores')
  histogram.legend()
  for method in evaluate.OCCLUSION_METHODS:
    curve = scores_lib.occlusion_roc(
        predictions[f'occlusion.{method}'][labelled], occluded[labelled])
    if curve.is_defined:
      roc.plot(curve.fpr, curve.tpr,
               label=f'{METHOD_LABELS[method]} (AUC {curve.auc:.2f})',
               color=colours.COLOURS[method])
  roc.plot([0, 1], [0, 1], ':', color=colours.COLOURS['paper'], linewidth=0.8,
           label='Chance')
  roc.set_xlabel('False positive rate')
  roc.set_ylabel('True positive rate')
  roc.set_title('ROC curve for occlusion')
  roc.legend(loc='lower right')
  return _save(figure, path, f'Occlusion, {title}')


def robustness(results: Mapping[str, Any], noise_sigmas: Sequence[float],
               path: str, *, title: str) -> figure_lib.Figure:
  """PCK@0.1 vs Gaussian noise on the graph networks' input (Fig. 10)."""
  return _pck_per_level(
      results, noise_sigmas, metric_keys.robustness,
      'Noise standard deviation σ (fraction of box scale)', path,
      f'Robustness, {title}')


def box_jitter(results: Mapping[str, Any], path: str, *,
               title: str) -> figure_lib.Figure:
  """PCK@0.1 vs random box error (`config.eval.box_jitter`)."""
  return _pck_per_level(
      results, metric_keys.levels(results, 'pck_box_jitter'),
      metric_keys.box_jitter,
      'Box jitter σ (fraction of box size)', path, f'Box jitter, {title}')


def _pck_per_level(results: Mapping[str, Any], levels: Sequence[float],
                   key: Callable[[str, float], str], xlabel: str, path: str,
                   title: str) -> figure_lib.Figure:
  """One PCK@0.1 line per method against a perturbation's levels."""
  figure, axis = _subplots(figsize=(4.5, 3.4))
  for method in evaluate.PERTURBED_METHODS:
    values = [results.get(key(method, level)) for level in levels]
    axis.plot(levels, _percent(values), 'o-', label=METHOD_LABELS[method],
              color=colours.COLOURS[method])
  axis.set_xlabel(xlabel)
  axis.set_ylabel('PCK@0.1 (in %)')
  return _finish(figure, axis, path, title)


def ablations(results: Mapping[str, Mapping[str, Any]],
              levels: Sequence[int], path: str, *, split: str,
              method: str = 'kgnn2d', alpha: float = 0.1,
              ) -> figure_lib.Figure:
  """One method's occluded PCK vs number of invisible points, per run.

  Runs are told apart by the default colour cycle (they are not methods);
  each legend entry names the run's checkpoint step.

  Args:
    results: metrics (`evaluate.compute_metrics`, with `step`) by run, in
      legend order.
    levels: the numbers of invisible keypoints on the x axis.
    path: the PNG.
    split: the split the runs were evaluated on.
    method: the method compared across runs.
    alpha: the PCK threshold.

  Returns:
    The figure.
  """
  figure, axis = _subplots(figsize=(4.5, 3.4))
  for label, run_results in results.items():
    values = [run_results.get(metric_keys.pck(method, f'occluded_{level}',
                                              alpha)) for level in levels]
    axis.plot(levels, _percent(values), 'o-',
              label=f'{label} (step {run_results.get("step")})')
  axis.set_xticks(list(levels))
  axis.set_xlabel('Number of invisible points')
  axis.set_ylabel('PCK of occluded points (in %)')
  return _finish(figure, axis, path, f'{METHOD_LABELS[method]}, alpha α = '
                 f'{alpha:g}, {split} split')


def multiview_correspondences(results: Mapping[str, Any],
                              view_counts: Sequence[int], path: str, *,
                              title: str) -> figure_lib.Figure:
  """Correspondences per view subset vs number of views (Fig. 4 right)."""
  lines = [(method, label, 'o-', colours.COLOURS[method])
           for method, label in METHOD_LABELS.items()]
  lines.append(('labels', 'Labels (upper bound)', 's--',
                colours.COLOURS['labels']))
  figure, axis = _subplots(figsize=(4.5, 3.4))
  for method, label, style, colour in lines:
    values = [results.get(metric_keys.multiview(method, n))
              for n in view_counts]
    axis.plot(view_counts, _values(values), style, label=label, color=colour)
  axis.set_xticks(list(view_counts))
  axis.set_xlabel('Number of views')
  axis.set_ylabel('Correspondences per view subset')
  return _finish(figure, axis, path, f'Multi-view correspondences, {title}',
                 ylim=(0, None))


def trifocal_labels(result: Mapping[str, Any], path: str, *,
                    headline_alpha: float, paper_fraction: float,
                    ) -> figure_lib.Figure:
  """Occluded labels within alpha of the trifocal transfer (Fig. 4 left).

  Args:
    result: `label_study.run_study`'s dict: `dataset`, `split`, `alphas`,
      `fraction_within` (with the annotator-noise model),
      `fraction_within_noise_free`, `noise_model` and
      `fraction_at_<headline_alpha>`.
    path: the PNG.
    headline_alpha: the alpha marked on the curve.
    paper_fraction: the paper's fraction at `headline_alpha`, drawn as a
      reference point.

  Returns:
    The figure (a study of the labels: no model, no checkpoint).
  """
  alphas, noise = result['alphas'], result['noise_model']
  figure, axis = _subplots(figsize=(5.5, 3.8))
  axis.plot(alphas, _percent(result['fraction_within']), '-',
            color=colours.COLOURS['labels'],
            label=(f'Annotator noise (σ visible {noise["sigma_visible"]:g}, '
                   f'occluded {noise["sigma_occluded"]:g}, '
                   f'swaps {noise["mirror_swap_rate"]:g})'))
  axis.plot(alphas, _percent(result['fraction_within_noise_free']), '--',
            color=colours.COLOURS['labels'], label='Noise-free labels')
  headline = result[f'fraction_at_{headline_alpha}']
  if headline is not None:
    axis.plot([headline_alpha], [100.0 * headline], 'o',
              color=colours.COLOURS['labels'])
    axis.annotate(f'{100.0 * headline:.1f}%',
                  (headline_alpha, 100.0 * headline),
                  textcoords='offset points', xytext=(6, -14))
  axis.plot([headline_alpha], [100.0 * paper_fraction], '*',
            color=colours.COLOURS['paper'], markersize=11,
            label=(f'Paper, CarFusion (~{100.0 * paper_fraction:g}% at '
                   f'α = {headline_alpha:g})'))
  axis.axvline(headline_alpha, color='grey', linewidth=0.8, linestyle=':')
  axis.set_xlabel('Alpha (α)')
  axis.set_ylabel('Occluded labels within α (in %)')
  axis.set_title('Hand-labelled occluded points vs trifocal transfer\n'
                 f'{result["dataset"]} {result["split"]} split, labels only '
                 '(no model)', fontsize=9)
  axis.set_xlim(0, max(alphas))
  axis.set_ylim(0, 102)  # The noise-free curve runs along 100%.
  axis.grid(alpha=0.3)
  axis.legend(loc='lower right', fontsize=8)
  return _save(figure, path)


def _gallery_legend() -> list[lines_lib.Line2D]:
  def entry(label, **style):
    return lines_lib.Line2D([], [], label=label, **style)

  return [
      entry('Ground truth, visible', marker='o', linestyle='none',
            markerfacecolor='none',
            markeredgecolor=colours.COLOURS['visible']),
      entry('Ground truth, occluded', marker='o', linestyle='none',
            markerfacecolor='none',
            markeredgecolor=colours.COLOURS['occluded']),
      entry(METHOD_LABELS['heatmap'], marker='+', linestyle='none',
            color=colours.COLOURS['heatmap']),
      entry(f'{METHOD_LABELS["kgnn2d"]}, predicted visible', marker='o',
            markersize=4, color=colours.COLOURS['kgnn2d'],
            markerfacecolor=colours.COLOURS['visible']),
      entry(f'{METHOD_LABELS["kgnn2d"]}, predicted occluded', marker='o',
            markersize=4, linestyle='--', color=colours.COLOURS['kgnn2d'],
            markerfacecolor=colours.COLOURS['occluded']),
  ]


def gallery(predictions: Mapping[str, np.ndarray],
            category: keypoints_lib.Category, path: str, *, title: str,
            columns: int = 4) -> figure_lib.Figure:
  """Ground truth and predictions on the first ROI crops (Fig. 11)."""
  crops = predictions['crops']
  columns = max(1, min(columns, len(crops)))
  rows = max(1, -(-len(crops) // columns))
  # The constrained layout leaves room for the titles and the legend below.
  figure = figure_lib.Figure(figsize=(2.5 * columns, 2.6 * rows + 0.8),
                             layout='constrained')
  axes = figure.subplots(rows, columns, squeeze=False)
  for index, axis in enumerate(axes.flat):
    axis.axis('off')
    if index >= len(crops):
      continue
    size = crops.shape[1]
    box = predictions['boxes'][index]

    def to_crop(points, box=box, size=size):
      # Pixels -> crop pixels: the crop is the box resized to size x size.
      return (points - box[:2]) / (box[2:] - box[:2]) * size

    axis.imshow(crops[index], extent=(0, size, size, 0))
    labels = predictions['visibility'][index]
    truth = to_crop(predictions['keypoints'][index])[labels > 0]
    axis.scatter(truth[:, 0], truth[:, 1], s=40, facecolors='none',
                 linewidths=1.2, edgecolors=np.where(
                     labels[labels > 0] == OCCLUDED,
                     colours.COLOURS['occluded'], colours.COLOURS['visible']))
    baseline = to_crop(predictions['heatmap'][index])
    axis.scatter(baseline[:, 0], baseline[:, 1], s=20, marker='+',
                 c=colours.COLOURS['heatmap'], linewidths=1.0)
    points = to_crop(predictions['kgnn2d'][index])
    occluded = predictions['occlusion_score'][index] > 0.5
    for i, j in category.skeleton:
      axis.plot(points[[i, j], 0], points[[i, j], 1],
                '--' if occluded[i] or occluded[j] else '-',
                color=colours.COLOURS['kgnn2d'], linewidth=1.0)
    axis.scatter(points[:, 0], points[:, 1], s=12, zorder=3,
                 edgecolors=colours.COLOURS['kgnn2d'], linewidths=0.8,
                 c=np.where(occluded, colours.COLOURS['occluded'],
                            colours.COLOURS['visible']))
    axis.set_xlim(0, size)
    axis.set_ylim(size, 0)
    axis.set_title(str(predictions['car_id'][index])[-24:], fontsize=7)
  figure.legend(handles=_gallery_legend(), loc='outside lower center',
                ncol=3 if columns > 2 else 1, fontsize=7, frameon=False)
  figure.suptitle(f'Predictions, {title}', fontsize=10)
  with epath.Path(path).open('wb') as file:
    figure.savefig(file, format='png', dpi=100)
  return figure


def write_all(directory: str, results: Mapping[str, Any],
              predictions: Mapping[str, np.ndarray],
              category: keypoints_lib.Category, *, split: str,
              alphas: Sequence[float], noise_sigmas: Sequence[float]) -> None:
  """Writes every figure of an evaluation into `directory`.

  Args:
    directory: output directory (exists).
    results: the evaluation's metrics (`evaluate.compute_metrics`), with the
      checkpoint's `step`.
    predictions: its per-view predictions (`evaluate.collect_predictions`).
    category: the keypoint category (skeleton for the gallery).
    split: the evaluated split (named in every title).
    alphas: PCK thresholds of the results.
    noise_sigmas: robustness noise levels of the results.
  """
  levels = [level for level in category.occlusion_levels
            if results.get(metric_keys.pck('kgnn2d', f'occluded_{level}',
                                           0.1)) is not None]
  title = caption(split, results['step'])
  pck_vs_alpha(results, alphas, levels, category.num_keypoints,
               os.path.join(directory, 'pck_vs_alpha.png'), title=title)
  pck_vs_invisible(results, levels,
                   os.path.join(directory, 'pck_vs_invisible.png'),
                   title=title)
  occlusion_roc(predictions, os.path.join(directory, 'occlusion_roc.png'),
                title=title)
  robustness(results, noise_sigmas, os.path.join(directory, 'robustness.png'),
             title=title)
  if metric_keys.levels(results, 'pck_box_jitter'):
    box_jitter(results, os.path.join(directory, 'box_jitter.png'),
               title=title)
  multiview_correspondences(results, multiview.VIEW_COUNTS,
                            os.path.join(directory, 'multiview.png'),
                            title=title)
  if len(predictions.get('crops', ())):
    gallery(predictions, category, os.path.join(directory, 'gallery.png'),
            title=title)
