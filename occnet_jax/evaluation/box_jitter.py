"""Detector error: randomly moved boxes and the crops they give.

A detector's box is off by some fraction of the car's size. `jitter_boxes`
moves each box's centre by Gaussian noise of standard deviation
sigma * (box width, box height) and scales its width and height by
exp(sigma * N(0, 1)), independently per axis. `recrop` resamples a record's
crop, taken from the original box, to the crop of the moved box (bilinear);
what lies outside the original box is not in the record and becomes zero,
as outside the image, so large sigmas also cost the network context a real
detector's crop would show. Both are pure jax.numpy and jit-able.
Evaluation scores the networks on such boxes (`config.eval.box_jitter`);
training can learn on them (`jitter_batch`, `config.train.box_jitter`).
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from jax.scipy import ndimage


def jitter_boxes(boxes: jax.Array, key: jax.Array,
                 sigma: float) -> jax.Array:
  """(N, 4) boxes moved and rescaled at random (module docstring).

  Args:
    boxes: (N, 4) boxes (x0, y0, x1, y1), pixels.
    key: PRNG key.
    sigma: standard deviation of the centre shift, in box sizes, and of the
      log-scale of width and height.

  Returns:
    (N, 4) float32 boxes.
  """
  boxes = jnp.asarray(boxes, jnp.float32)
  centre = 0.5 * (boxes[:, :2] + boxes[:, 2:])
  size = boxes[:, 2:] - boxes[:, :2]
  shift, log_scale = jax.random.normal(key, (2,) + size.shape)
  centre = centre + sigma * size * shift
  size = size * jnp.exp(sigma * log_scale)
  return jnp.concatenate([centre - 0.5 * size, centre + 0.5 * size], axis=-1)


def recrop(crops: jax.Array, boxes: jax.Array,
           new_boxes: jax.Array) -> jax.Array:
  """Resamples crops of `boxes` to crops of `new_boxes`.

  Crop pixel i covers [i, i + 1] of S pixels across its box, so its centre
  is at the fraction (i + 0.5) / S.

  Args:
    crops: (N, S, S, C) uint8 crops, each of its box.
    boxes: (N, 4) the crops' boxes, pixels.
    new_boxes: (N, 4) the boxes to crop instead.

  Returns:
    (N, S, S, C) uint8 crops; zero outside the original box.
  """
  size = crops.shape[1]
  fractions = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size

  def old_index(axis):
    # Full-frame position of each new pixel centre, then the old crop's
    # (fractional) pixel index there.
    low, high = new_boxes[:, axis, None], new_boxes[:, axis + 2, None]
    position = low + fractions[None] * (high - low)
    old_low, old_high = boxes[:, axis, None], boxes[:, axis + 2, None]
    return (position - old_low) / (old_high - old_low) * size - 0.5

  def one(crop, columns, rows):
    grid_rows, grid_columns = jnp.meshgrid(rows, columns, indexing='ij')
    channels = [ndimage.map_coordinates(
        crop[..., c].astype(jnp.float32), [grid_rows, grid_columns],
        order=1, mode='constant', cval=0.0) for c in range(crop.shape[-1])]
    return jnp.stack(channels, axis=-1)

  resampled = jax.vmap(one)(crops, old_index(0), old_index(1))
  return jnp.clip(jnp.round(resampled), 0, 255).astype(jnp.uint8)


def jitter_batch(batch: Mapping[str, jax.Array], key: jax.Array, sigma: float,
                 first_car: jax.Array | int = 0) -> dict[str, jax.Array]:
  """A training batch whose real views have moved boxes and their crops.

  Each car's boxes are moved by `jitter_boxes` with its own key,
  `fold_in(key, first_car + row)`, so a car's jitter depends on the seed,
  the step and its place in the global batch, not on how the batch is split
  over devices. The labels follow the moved box: they are pixels
  (docs/design.md, "Batches"), unchanged here, and every loss reads them in
  the coordinates of the batch's (moved) box, so the example is the record
  as if the box rule had given the moved box. Nothing but the boxes, the
  crops and the key is read: no input depends on a label, occluded or not.

  Args:
    batch: `crops` (B, V, S, S, 3), `boxes` (B, V, 4) and `view_mask`
      (B, V) as in docs/design.md; other fields pass through.
    key: this step's jitter key.
    sigma: `jitter_boxes`' sigma.
    first_car: the global index of the batch's first car.

  Returns:
    The batch with `boxes` moved (padding views keep theirs) and `crops`
    resampled to them.
  """
  crops, boxes = batch['crops'], batch['boxes']
  cars = first_car + jnp.arange(boxes.shape[0])
  keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, cars)
  moved = jax.vmap(jitter_boxes, in_axes=(0, 0, None))(boxes, keys, sigma)
  moved = jnp.where(batch['view_mask'][..., None], moved, boxes)
  flat = lambda values: values.reshape((-1,) + values.shape[2:])
  return {**batch, 'boxes': moved, 'crops': recrop(
      flat(crops), flat(boxes), flat(moved)).reshape(crops.shape)}
