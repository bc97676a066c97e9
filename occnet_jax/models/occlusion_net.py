"""Occlusion-Net: heatmap head -> 2D-KGNN encoder/decoder -> 3D-KGNN.

The network works on flattened views (N = B * V): every view is processed
on its own, and multi-view information enters only through the trifocal
loss. Output keys and shapes are listed in docs/design.md.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from occnet_jax import keypoints as keypoints_lib
from occnet_jax import shape_basis as shape_basis_lib
from occnet_jax.models import graphs
from occnet_jax.models import heatmap_head
from occnet_jax.models import kgnn2d
from occnet_jax.models import kgnn3d


def box_aspect(boxes: jax.Array) -> jax.Array:
  """Width / height of (..., 4) boxes; 1 for empty (padding) boxes."""
  width = boxes[..., 2] - boxes[..., 0]
  height = boxes[..., 3] - boxes[..., 1]
  valid = (width > 0) & (height > 0)
  # Both branches are finite, so gradients stay finite for padding views.
  return jnp.where(valid, width, 1.0) / jnp.where(valid, height, 1.0)


class OcclusionNet(nn.Module):
  """The full model; see `create_model` for the configuration.

  Attributes:
    category: keypoint count, types.
    shape_basis: PCA basis of the 3D branch.
    heatmap_features: channels of the heatmap head's convs.
    heatmap_layers: dilated conv layers of the heatmap head.
    heatmap_size: heatmap resolution H = W.
    hidden: width of the graph networks.
    dropout_rate: dropout in training.
    use_keypoint_type: node features include the keypoint type.
    use_encoder: the decoder uses the encoder's edge probabilities (False:
      uniform ones, the ablation).
    decoder_gate: one of `kgnn2d.DECODER_GATES`: how the occlusion score of
      the edge probabilities the decoder reads scales each keypoint's
      displacement ('none': every keypoint moves freely, the ablation).
      Without the encoder that score is 0.5 everywhere: the soft gate halves
      every displacement, and the gate, like the messages, knows nothing of
      which keypoints are hidden.
    decoder_gate_threshold: the hard gate opens for scores above it.
    decoder_gate_open_rate: in training, each keypoint's gate also opens
      with this probability (`kgnn2d.open_at_random`; needs the 'dropout'
      rng); evaluation never opens one.
    graph_trains_head: the graph losses' gradients reach the heatmap head
      through its keypoints and confidences (end to end). False (the
      default config) keeps the head a detector trained on visible
      keypoints only, so that no occluded supervision reaches it and the
      `heatmap` method stays a baseline that knows nothing of hidden points.
    dtype: computation dtype of the convolutions and graph MLPs (bfloat16
      for mixed precision). Parameters and every output are float32, and so
      is everything computed from the outputs (decoding, geometry, losses).
  """

  category: keypoints_lib.Category
  shape_basis: shape_basis_lib.ShapeBasis
  heatmap_features: int
  heatmap_layers: int
  heatmap_size: int
  hidden: int
  dropout_rate: float
  use_keypoint_type: bool = True
  use_encoder: bool = True
  decoder_gate: str = 'none'
  decoder_gate_threshold: float = 0.5
  decoder_gate_open_rate: float = 0.0
  graph_trains_head: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, crops: jax.Array | None, boxes: jax.Array, *,
               train: bool, keypoints: jax.Array | None = None,
               confidence: jax.Array | None = None) -> dict[str, jax.Array]:
    """Runs every stage.

    Args:
      crops: (N, S, S, 3) uint8 ROI crops; unused in keypoints-in mode.
      boxes: (N, 4) boxes in pixels (their aspect enters the 3D branch).
      train: enables dropout (needs a 'dropout' rng).
      keypoints: optional (N, K, 2) box-normalised keypoints from an
        external detector; with `confidence` (N, K), skips the heatmap head.
      confidence: see `keypoints`.

    Returns:
      The dict of outputs of docs/design.md.
    """
    outputs = {}
    if keypoints is None:
      heatmaps = heatmap_head.HeatmapHead(
          self.category.num_keypoints, self.heatmap_features,
          self.heatmap_layers, self.heatmap_size, self.dtype)(crops)
      keypoints, confidence = heatmap_head.decode_heatmaps(heatmaps)
      outputs['heatmaps'] = heatmaps
    elif confidence is None:
      raise ValueError('Keypoints-in mode needs both keypoints and confidence.')
    outputs['initial_keypoints'] = keypoints
    outputs['confidence'] = confidence
    if not self.graph_trains_head:
      keypoints, confidence = jax.lax.stop_gradient((keypoints, confidence))
    num_views, num_keypoints, _ = keypoints.shape

    graph = graphs.batch_graphs(graphs.node_features(
        keypoints, confidence, self.category, self.use_keypoint_type))
    edge_logits = kgnn2d.KGNNEncoder(self.hidden, self.dropout_rate,
                                     self.dtype)(graph, train=train)
    edge_probabilities = jax.nn.softmax(edge_logits)
    decoder_edge_probabilities = (
        edge_probabilities if self.use_encoder else
        kgnn2d.uniform_edge_probabilities(edge_logits.shape[0]))
    gate = kgnn2d.displacement_gate(
        kgnn2d.occlusion_scores(decoder_edge_probabilities, graph),
        self.decoder_gate, self.decoder_gate_threshold)
    if train and gate is not None and self.decoder_gate_open_rate:
      gate = kgnn2d.open_at_random(gate, self.decoder_gate_open_rate,
                                   self.make_rng('dropout'))
    keypoints_2d = kgnn2d.KGNNDecoder(self.hidden, self.dropout_rate,
                                      self.dtype)(
        graph, decoder_edge_probabilities, gate, train=train)
    keypoints_2d = keypoints_2d.reshape(num_views, num_keypoints, 2)
    outputs['edge_logits'] = edge_logits.reshape(num_views, -1,
                                                 kgnn2d.NUM_EDGE_TYPES)
    outputs['occlusion_score'] = kgnn2d.occlusion_scores(
        edge_probabilities, graph).reshape(num_views, num_keypoints)
    outputs['keypoints_2d'] = keypoints_2d

    # The 3D branch reads V^g = (x^g, y^g, c, t) as data: the reprojection
    # loss reaches the 2D-KGNN only through its target V^g (Eq. 10, where
    # the shape prior pulls the 2D keypoints), if the loss lets it
    # (`config.loss.reproj_trains_2d`), never by asking the 2D-KGNN for
    # inputs that are easier for the 3D branch to explain.
    graph_2d = graphs.batch_graphs(jax.lax.stop_gradient(graphs.node_features(
        keypoints_2d, confidence, self.category, self.use_keypoint_type)))
    outputs.update(kgnn3d.KGNN3D(self.shape_basis, self.hidden,
                                 self.dropout_rate, dtype=self.dtype)(
                                     graph_2d, box_aspect(boxes), train=train))
    return outputs
