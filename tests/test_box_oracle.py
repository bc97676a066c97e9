"""Tests of the box-leak oracle (data_prep/box_oracle.py)."""

import numpy as np

from data_prep import box_oracle
from occnet_jax import labels

VISIBLE = labels.Visibility.VISIBLE
OCCLUDED = labels.Visibility.OCCLUDED


def make_views(rng, count):
  """Views of a triangle of 3 visible points and 1 hidden point beside it.

  The hidden point lies to the right of the triangle at a random distance,
  so the visible points say nothing about its x; a box around all labelled
  points always has it on its right edge.
  """
  template = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]])
  size = rng.uniform(20, 60, (count, 1, 1))
  origin = rng.uniform(0, 500, (count, 1, 2))
  visible = origin + size * template
  hidden = origin[:, 0] + size[:, 0] * np.stack(
      [1.0 + rng.uniform(0.3, 3.0, count), np.full(count, 0.5)], -1)
  keypoints = np.concatenate([visible, hidden[:, None]], axis=1)
  visibility = np.array([VISIBLE] * 3 + [OCCLUDED])[None].repeat(count, 0)
  kinds = np.array([0, 0, 0, labels.OcclusionKind.OTHER_VEHICLE])
  data = {'true_keypoints': keypoints, 'visibility': visibility,
          'occlusion_kind': kinds[None].repeat(count, 0)}
  data['boxes'] = box_oracle.rule_boxes(data, 'visible_hull')
  return data


def test_a_box_around_hidden_points_leaks_them(seed):
  rng = np.random.default_rng(seed)
  result = box_oracle.study(make_views(rng, 400), make_views(rng, 200))
  hull, record = result['visible_hull'], result['record']
  leaky = result['all_labelled_hull']
  assert result['num_occluded'] == result['num_other_occluder'] == 200
  assert hull == record
  # The visible triangle says little about the hidden point; the leaky box
  # puts it on its edge.
  assert hull['other_occluder_record_scale'] < 0.4
  assert leaky['other_occluder_record_scale'] > 0.9
  assert leaky['other_occluder'] > hull['other_occluder'] + 0.4


def test_a_query_in_the_database_is_its_own_neighbour(seed):
  data = make_views(np.random.default_rng(seed), 50)
  result = box_oracle.study(data, data)
  for rule in box_oracle.RULES:
    assert result[rule]['occluded'] == 1.0, rule
  table = box_oracle.format_study(result).splitlines()
  for rule, line in zip(box_oracle.RULES, table[2:]):
    assert line.split() == [rule] + ['100.0'] * 4
