"""The 2D keypoint graph network (2D-KGNN): edge encoder and point decoder.

The encoder (paper Eqs. 1-4) reads the heatmap graph and predicts, for every
directed edge (i, j), logits over two edge types: type 1 when both keypoints
are visible, type 0 otherwise. The decoder (Eqs. 6-8) passes one message per
edge type, weighted by the encoder's edge probability, and predicts each
keypoint's displacement from its input position, scaled per keypoint by
the encoder's belief that the keypoint is occluded (`displacement_gate`):
the decoder is the paper's occluded point predictor, and a keypoint the
encoder is sure is visible stays where the heatmap put it.

The decoder's likelihood N(mu_j, rho^2 I) (Eq. 8) has a fixed variance rho^2,
so its negative log-likelihood is a squared error up to constants: the
network outputs the mean mu only, and the losses are squared distances.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from occnet_jax.models import graphs
from occnet_jax.models import layers

NUM_EDGE_TYPES = 2
# Edge type meaning "both endpoints visible" (the paper's E_ij = 1).
VISIBLE_EDGE = 1
# `config.model.decoder_gate`: how the occlusion score scales a keypoint's
# displacement (`displacement_gate`).
DECODER_GATES = ('none', 'soft', 'hard')


class _GraphNetwork(nn.Module):
  """What the encoder and the decoder are configured by.

  Attributes:
    hidden: width of every hidden layer.
    dropout_rate: dropout in training.
    dtype: computation dtype (bfloat16 for mixed precision); the outputs
      are float32.
  """

  hidden: int
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32


class KGNNEncoder(_GraphNetwork):
  """Occluded-edge predictor q(E_ij | V) (Eqs. 1-4).

  Its attributes are `_GraphNetwork`'s.
  """

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, *, train: bool) -> jax.Array:
    """Returns (num_edges, NUM_EDGE_TYPES) edge-type logits."""
    nodes = layers.MessagePassing(self.hidden, self.dropout_rate,
                                  dtype=self.dtype,
                                  name='message_passing')(graph, train=train)
    return layers.EdgeMLP((self.hidden, self.hidden, NUM_EDGE_TYPES),
                          self.dropout_rate, dtype=self.dtype,
                          name='vertex_to_edge_2')(
                              nodes, graph, train=train).astype(jnp.float32)


class KGNNDecoder(_GraphNetwork):
  """Occluded-point predictor: the mean mu^g of P(V^g | V, E) (Eqs. 6-7).

  mu^g_j = V_j + g_j Delta_j, Delta_j = f_v([V_j, sum_i h_(i,j)]): the
  node update reads the node's own features beside its incoming messages
  (as the authors' release does), so how far a keypoint moves can depend
  directly on its own confidence and type; g_j is the displacement gate
  (`displacement_gate`; 1 without one).

  The last layer starts at zero, so an untrained decoder returns its input
  positions: training starts from the heatmap graph and learns the
  deformation Delta V = V^g - V. Its attributes are `_GraphNetwork`'s.
  """

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, edge_probabilities: jax.Array,
               gate: jax.Array | None = None, *, train: bool) -> jax.Array:
    """Moves the nodes, each by its gated displacement.

    Args:
      graph: nodes (num_nodes, F) whose first two features are (x, y).
      edge_probabilities: (num_edges, NUM_EDGE_TYPES) E_ij,p.
      gate: (num_nodes,) g_j in [0, 1] (`displacement_gate`); None moves
        every node by its whole displacement (the ungated decoder).
      train: enables dropout.

    Returns:
      (num_nodes, 2) output positions mu^g.
    """
    messages = 0.0
    for edge_type in range(NUM_EDGE_TYPES):
      message = layers.EdgeMLP(
          (self.hidden, self.hidden), self.dropout_rate, activate_final=True,
          dtype=self.dtype, name=f'message_type_{edge_type}')(
              graph.nodes, graph, train=train)
      messages += edge_probabilities[:, edge_type, None] * message
    displacement = layers.MLP(
        (self.hidden, 2), self.dropout_rate, kernel_init=nn.initializers.zeros,
        dtype=self.dtype, name='node_update')(
            jnp.concatenate(
                [graph.nodes, graphs.sum_incoming(messages, graph)], -1),
            train=train)
    displacement = displacement.astype(jnp.float32)
    if gate is not None:
      # A closed gate (0) adds exactly 0 * Delta = 0: the node stays put.
      displacement = gate[:, None] * displacement
    return graph.nodes[:, :2] + displacement


def displacement_gate(scores: jax.Array, mode: str,
                      threshold: float) -> jax.Array | None:
  """The decoder's per-keypoint gate g_j from occlusion scores s_j.

  'soft': g_j = s_j, so mu_j = V_j + s_j Delta_j; 'hard': g_j = 1 where
  s_j > threshold, else 0; 'none': no gate (every keypoint moves, the
  ablation).

  The scores' gradient is stopped. The encoder learns to classify from the
  visibility labels (the edge loss); were the keypoint losses to reach it
  through the gate, they would pay it to call a keypoint visible wherever
  moving it costs loss (a noisy trifocal target, a visible term that wants
  the heatmap's position) and occluded wherever moving it helps, trading its
  calibration (the occlusion AUC) for the decoder's convenience. With the
  gradient stopped the gate is a fixed per-node weight of the decoder's
  output, so the hard gate needs no straight-through estimator: its step has
  zero derivative almost everywhere, and nothing is lost by not
  differentiating it; the decoder's displacement still gets every gradient
  where the gate is open.

  Args:
    scores: (num_nodes,) occlusion scores in [0, 1] (`occlusion_scores`).
    mode: one of `DECODER_GATES`.
    threshold: the hard gate opens above it.

  Returns:
    (num_nodes,) gates in [0, 1], or None for 'none'.
  """
  if mode not in DECODER_GATES:
    raise ValueError(f'decoder gate {mode!r} not in {DECODER_GATES}.')
  if mode == 'none':
    return None
  scores = jax.lax.stop_gradient(scores)
  if mode == 'soft':
    return scores
  return (scores > threshold).astype(scores.dtype)


def open_at_random(gate: jax.Array, rate: float,
                   rng: jax.Array) -> jax.Array:
  """Training's gate: each keypoint's gate also opens with probability `rate`.

  Trained behind its own encoder's gate, the decoder almost never sees a
  visible keypoint with an open gate: on its training cars the encoder is
  nearly always right. On held-out cars it calls a few visible keypoints
  occluded, and the decoder, which only ever learned to move hidden
  keypoints, moves those too (on the demo's validation split, 4% of the
  visible keypoints; the heatmap had 79% of them right at PCK@0.1, the
  2D-KGNN 17%). Opened at random, gates show the decoder visible keypoints
  under an open gate, where the visible term asks it to keep them. Which
  gates open is a coin flip: no label decides it.

  Args:
    gate: (num_nodes,) gates in [0, 1] (`displacement_gate`).
    rate: the probability that a gate is opened (set to 1).
    rng: the coin flips' key.

  Returns:
    (num_nodes,) gates, each at least the input's.
  """
  opened = jax.random.bernoulli(rng, rate, gate.shape)
  return jnp.where(opened, jnp.ones_like(gate), gate)


def occlusion_scores(edge_probabilities: jax.Array,
                     graph: jraph.GraphsTuple) -> jax.Array:
  """Per-keypoint probability of being occluded, from edge probabilities.

  An edge is of the visible type iff both its endpoints are visible, so
  P(j visible) >= P(edge (i, j) visible) for every edge touching j. The
  score is the complement of the tightest of these bounds: 1 - max over the
  edges in and out of j of P(visible edge). A visible keypoint scores low as
  soon as one other keypoint is visible with it; an occluded one scores
  high whatever the others do (a mean over edges would instead rise for
  visible keypoints of heavily occluded views).

  Args:
    edge_probabilities: (num_edges, NUM_EDGE_TYPES).
    graph: the graph the edges belong to.

  Returns:
    (num_nodes,) scores in [0, 1].
  """
  return 1.0 - graphs.max_incident(edge_probabilities[:, VISIBLE_EDGE], graph)


def uniform_edge_probabilities(num_edges: int) -> jax.Array:
  """Edge probabilities of the ablation without encoder: every type equal."""
  return jnp.full((num_edges, NUM_EDGE_TYPES), 1.0 / NUM_EDGE_TYPES)
