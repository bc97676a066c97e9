"""Prediction's input checks: images, boxes, image ids (no model needed)."""

import logging

import cv2
import numpy as np
import pytest

from occnet_jax import predict


@pytest.fixture
def rng():
  seed = np.random.SeedSequence().entropy % 2**32
  print(f'seed = {seed}')
  return np.random.default_rng(seed)


@pytest.mark.parametrize('suffix', ['.jpg', '.png'])
def test_truncated_images_are_rejected(rng, tmp_path, suffix):
  image = rng.integers(0, 256, (90, 120, 3), np.uint8)
  path = tmp_path / f'full{suffix}'
  cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  loaded = predict.load_image(str(path))
  assert loaded.shape == image.shape and loaded.dtype == np.uint8
  if suffix == '.png':  # Lossless: the exact pixels, in RGB order.
    np.testing.assert_array_equal(loaded, image)
  data = path.read_bytes()
  truncated = tmp_path / f'truncated{suffix}'
  truncated.write_bytes(data[:int(len(data) * rng.uniform(0.2, 0.8))])
  with pytest.raises(predict.PredictionInputError, match='incomplete'):
    predict.load_image(str(truncated))


@pytest.mark.parametrize('entry, message', [
    ({'bbox': [1, 2, 3]}, r'Box 0 is not four numbers "bbox" \[x, y, width'),
    ({'bbox': [1, 2, 3, 'a']}, 'Box 0 is not four numbers'),
    ({'bbox': [10, 20, -5, 30]}, 'width, height >= 0'),
    ([1, 2, 3, 4, 5], r'Box 0 is not four numbers \[x0, y0, x1, y1\]'),
    ({'box': None}, 'Box 0 is not four numbers'),
    ([True, 0, 1, 1], 'Box 0 is not four numbers'),
])
def test_malformed_boxes_are_named(entry, message):
  with pytest.raises(predict.PredictionInputError, match=message):
    predict.parse_boxes([entry])


def test_box_formats_agree(rng):
  x0, y0 = rng.uniform(0, 100, 2)
  width, height = rng.uniform(1, 50, 2)
  corners = [x0, y0, x0 + width, y0 + height]
  boxes = predict.parse_boxes([corners, {'box': corners, 'score': 0.3},
                               {'bbox': [x0, y0, width, height]}])
  np.testing.assert_allclose(boxes, np.tile(corners, (3, 1)), rtol=1e-6)


def test_swapped_corners_are_named(caplog):
  boxes = np.array([[50, 10, 20, 40], [10, 40, 30, 20], [0, 0, 10, 10],
                    [5, 5, 5.5, 20]], np.float32)
  with caplog.at_level(logging.WARNING):
    usable = predict.usable_boxes(boxes, (100, 100))
  assert usable.tolist() == [False, False, True, False]
  swapped = [record.getMessage() for record in caplog.records
             if 'corners swapped?' in record.getMessage()]
  assert len(swapped) == 2
  assert any('is empty' in record.getMessage() for record in caplog.records)


def test_coco_image_ids_are_integers():
  assert predict.coco_image_id('/data/coco/000000397133.jpg') == 397133
  street = predict.coco_image_id('a/street.jpg')
  assert isinstance(street, int) and street == predict.coco_image_id(
      'b/street.png')
  assert street != predict.coco_image_id('a/street2.jpg')
