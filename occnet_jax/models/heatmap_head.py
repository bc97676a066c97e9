"""Keypoint heatmap head: ROI crop -> one heatmap per keypoint -> nodes.

The crop is resized from the car's box, so heatmap cell (r, c) of an H x W
heatmap covers box coordinates centred on (-1 + (2c + 1)/W, -1 + (2r + 1)/H).

Decoding is a local soft-argmax: the argmax cell, refined to sub-cell
precision by the probability-weighted mean of the cell centres in the 3x3
window around it. A global soft-argmax averages all modes, and the heatmap of
an occluded or mirrored keypoint is often bimodal (left and right wheel), so
its mean can fall between the modes on no keypoint at all; the local window
keeps the strongest mode. The training target (`heatmap_targets`) spreads
each point bilinearly over its four nearest cell centres, whose weighted mean
is the point itself: the decoder is then exact on the target and a
cross-entropy-trained head is not biased to cell centres. The confidence c_i
is the probability mass in that window: in [0, 1], comparable across
keypoints and views, and not fooled by a peak split over two cells.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

_WINDOW = 3


def dilations(num_layers: int, heatmap_size: int) -> tuple[int, ...]:
  """Dilation of each 3x3 conv layer: 1, 2, 4, ..., restarting at 1.

  The dilations double while they stay below the map size and then start
  again at 1. A dilation of at least the map size puts every tap but the
  centre into the zero padding: the layer is a 1x1 conv in disguise that
  adds no receptive field, yet XLA:CPU runs it on a padded copy of the map
  (dilation d pads d cells on each side) at a fraction of the FLOP rate.
  On the paper-size head (512 features, 32 x 32) one layer took 3x (d =
  32), 7x (d = 64) and 17x (d = 128) the time of d = 1, and the process's
  memory grew with the padded map (at d = 128, 81 times the map). Cycling
  keeps the receptive field growing: after 1, 2, ..., 2^(n-1) it spans
  2^(n+1) - 1 cells, the whole map once 2^n >= map size.

  Args:
    num_layers: number of dilated layers.
    heatmap_size: H = W of the map they run on.

  Returns:
    One dilation per layer; 2^layer wherever 2^layer < heatmap_size.
  """
  period = max(1, (heatmap_size - 1).bit_length())
  return tuple(2**(layer % period) for layer in range(num_layers))


class HeatmapHead(nn.Module):
  """A dilated conv net from a uint8 crop to per-keypoint heatmap logits.

  A strided stem brings the crop to the heatmap resolution; 3x3 convs with
  dilation 1, 2, 4, ... (`dilations`) then grow the receptive field to most
  of the crop at that resolution, so a keypoint is placed in the context of
  the whole car.

  Attributes:
    num_keypoints: K.
    features: channels of every conv layer.
    num_layers: number of dilated 3x3 conv layers.
    heatmap_size: H = W of the heatmaps; must divide the crop size.
    dtype: the convolutions' computation dtype (bfloat16 for mixed
      precision); parameters stay float32 and the logits are float32.
  """

  num_keypoints: int
  features: int
  num_layers: int
  heatmap_size: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, crops: jax.Array) -> jax.Array:
    """Returns (N, K, H, W) heatmap logits for (N, S, S, 3) uint8 crops."""
    crop_size = crops.shape[1]
    if crop_size % self.heatmap_size:
      raise ValueError(f'heatmap_size {self.heatmap_size} must divide the '
                       f'crop size {crop_size}.')
    stride = crop_size // self.heatmap_size
    x = crops.astype(jnp.float32) / 127.5 - 1.0
    # The stem kernel covers its stride window plus a pixel of overlap.
    x = nn.relu(nn.Conv(self.features, (stride + 2, stride + 2),
                        strides=stride, dtype=self.dtype, name='stem')(x))
    for dilation in dilations(self.num_layers, self.heatmap_size):
      x = nn.relu(nn.Conv(self.features, (3, 3), kernel_dilation=dilation,
                          dtype=self.dtype)(x))
    logits = nn.Conv(self.num_keypoints, (1, 1), dtype=self.dtype,
                     name='logits')(x)
    return jnp.moveaxis(logits.astype(jnp.float32), -1, -3)


def cell_centres(size: int) -> jax.Array:
  """Box coordinates of the centres of `size` cells spanning [-1, 1]."""
  return -1.0 + (2.0 * jnp.arange(size, dtype=jnp.float32) + 1.0) / size


def decode_heatmaps(heatmaps: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Keypoints and confidences from heatmap logits (local soft-argmax).

  Args:
    heatmaps: (..., H, W) logits.

  Returns:
    keypoints (..., 2) as box coordinates (x, y), and confidence (...): the
    softmax probability mass of the 3x3 window around the argmax.
  """
  *batch, height, width = heatmaps.shape
  probs = jax.nn.softmax(heatmaps.reshape(*batch, height * width), axis=-1)
  probs = probs.reshape(*batch, height, width)
  peak = jnp.argmax(probs.reshape(*batch, height * width), axis=-1)
  half = _WINDOW // 2
  # Zero padding keeps the window inside the array; padded cells weigh 0.
  padded = jnp.pad(probs, [(0, 0)] * len(batch) + [(half, half)] * 2)
  padded_x = jnp.pad(cell_centres(width), half)
  padded_y = jnp.pad(cell_centres(height), half)

  def window(probs_2d, peak_index):
    row, col = peak_index // width, peak_index % width
    weights = jax.lax.dynamic_slice(probs_2d, (row, col), (_WINDOW, _WINDOW))
    xs = jax.lax.dynamic_slice(padded_x, (col,), (_WINDOW,))
    ys = jax.lax.dynamic_slice(padded_y, (row,), (_WINDOW,))
    mass = weights.sum()
    point = jnp.stack([(weights.sum(0) * xs).sum(),
                       (weights.sum(1) * ys).sum()])
    return point / mass, mass

  flat_points, flat_mass = jax.vmap(window)(
      padded.reshape(-1, height + 2 * half, width + 2 * half), peak.reshape(-1))
  return flat_points.reshape(*batch, 2), flat_mass.reshape(batch)


def heatmap_targets(points: jax.Array, height: int, width: int) -> jax.Array:
  """Soft heatmap targets: each point split bilinearly over 4 cell centres.

  Args:
    points: (..., 2) box coordinates (x, y); clipped to the outermost cell
      centres.
    height: H.
    width: W.

  Returns:
    (..., H, W) distributions summing to 1 whose mean cell centre is the
    (clipped) point.
  """

  def axis_weights(coordinate, size):
    # Continuous cell index: cell c's centre is at index c.
    index = jnp.clip((coordinate + 1.0) * size / 2.0 - 0.5, 0.0, size - 1.0)
    lower = jnp.floor(index)
    upper_weight = index - lower
    lower = lower.astype(jnp.int32)
    upper = jnp.minimum(lower + 1, size - 1)
    return ((1.0 - upper_weight)[..., None] * jax.nn.one_hot(lower, size)
            + upper_weight[..., None] * jax.nn.one_hot(upper, size))

  column_weights = axis_weights(points[..., 0], width)
  row_weights = axis_weights(points[..., 1], height)
  return row_weights[..., :, None] * column_weights[..., None, :]
