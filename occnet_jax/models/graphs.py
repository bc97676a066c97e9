"""Keypoint graphs as batched `jraph.GraphsTuple`s.

Each view is one graph: its K keypoints are the nodes, joined by all K(K-1)
directed edges (no self-loops) in the order of `fully_connected_edges`. A
batch of N views is one `GraphsTuple` with N*K nodes and N*K(K-1) edges.
Every graph has the same size, so the budget is fixed by the batch shape
(one compile); padding views are ordinary graphs here and are masked with
the batch's `view_mask` in the losses and metrics.
"""

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from occnet_jax import keypoints as keypoints_lib


def fully_connected_edges(num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
  """Senders and receivers of the directed complete graph without self-loops.

  Args:
    num_nodes: K.

  Returns:
    (senders, receivers), int32 arrays of length K(K-1), ordered by sender
    then receiver: edge (i, j) for i != j in row-major order.
  """
  senders, receivers = np.nonzero(~np.eye(num_nodes, dtype=bool))
  return senders.astype(np.int32), receivers.astype(np.int32)


def node_features(keypoints: jax.Array, confidence: jax.Array,
                  category: keypoints_lib.Category,
                  use_keypoint_type: bool) -> jax.Array:
  """The paper's node features V_i = (x_i, y_i, c_i, t_i).

  Args:
    keypoints: (N, K, 2) box-normalised keypoints.
    confidence: (N, K) keypoint confidences.
    category: gives the keypoint types t_i, encoded one-hot.
    use_keypoint_type: False drops t_i (the ablation without types).

  Returns:
    (N, K, 3 + num_types) features, or (N, K, 3) without types.
  """
  features = [keypoints, confidence[..., None]]
  if use_keypoint_type:
    types = jax.nn.one_hot(np.asarray(category.types), category.num_types,
                           dtype=keypoints.dtype)
    features.append(
        jnp.broadcast_to(types, keypoints.shape[:-1] + types.shape[-1:]))
  return jnp.concatenate(features, axis=-1)


def batch_graphs(nodes: jax.Array) -> jraph.GraphsTuple:
  """One fully connected graph per view, batched into a `GraphsTuple`.

  Args:
    nodes: (N, K, F) node features of N views.

  Returns:
    A `GraphsTuple` with (N*K, F) nodes, no edge features, N*K(K-1) edges
    (view n's edges follow `fully_connected_edges(K)` offset by n*K).
  """
  num_graphs, num_nodes, _ = nodes.shape
  senders, receivers = fully_connected_edges(num_nodes)
  offsets = num_nodes * np.arange(num_graphs, dtype=np.int32)[:, None]
  return jraph.GraphsTuple(
      nodes=nodes.reshape(num_graphs * num_nodes, -1),
      edges=None,
      senders=(offsets + senders).reshape(-1),
      receivers=(offsets + receivers).reshape(-1),
      globals=None,
      n_node=np.full(num_graphs, num_nodes, np.int32),
      n_edge=np.full(num_graphs, senders.size, np.int32))


def total_nodes(graph: jraph.GraphsTuple) -> int:
  """The static number of nodes of a batched graph."""
  return jax.tree.leaves(graph.nodes)[0].shape[0]


def sum_incoming(edge_values: jax.Array, graph: jraph.GraphsTuple) -> jax.Array:
  """Sums edge values at their receivers: (edges, ...) -> (nodes, ...)."""
  return jraph.segment_sum(edge_values, graph.receivers,
                           num_segments=total_nodes(graph))


def max_incident(edge_values: jax.Array, graph: jraph.GraphsTuple) -> jax.Array:
  """Max of edge values over all edges touching a node, in or out."""
  num_nodes = total_nodes(graph)
  return jnp.maximum(
      jraph.segment_max(edge_values, graph.senders, num_segments=num_nodes),
      jraph.segment_max(edge_values, graph.receivers, num_segments=num_nodes))
