"""Keypoint graphs as batched `jraph.GraphsTuple`s.

Each view is one graph: its K keypoints are the nodes, joined by all K(K-1)
directed edges (no self-loops) in the order of `fully_connected_edges`. A
batch of N views is one `GraphsTuple` with N*K nodes and N*K(K-1) edges.
Every graph has the same size, so the budget is fixed by the batch shape
(one compile); padding views are ordinary graphs here and are masked with
the batch's `view_mask` in the losses and metrics.

Message passing (`pair_sum`, `sum_incoming`) takes any `GraphsTuple`. On the
batched complete graphs of `batch_graphs` it runs dense: each view's edge
values, in edge order, are the off-diagonal entries of a (K, K) sender x
receiver grid, so the per-edge gathers are a broadcast and a slice, and the
per-receiver `segment_sum` (a scatter-add, and a scatter-add again in the
gathers' backward pass) is a sum over the grid's sender axis. Any other
graph (sparse, or with traced indices) takes jraph's gathers and segment
ops; both give the same values.
"""

from typing import Any

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from occnet_jax import keypoints as keypoints_lib


def views_to_nodes(values: Any) -> Any:
  """(B, V, ...) per-view values -> (B * V, ...), one row per view's graph.

  Every flatten of a batch's cars and views into the model's graphs (the
  model's inputs, the losses' labels, the evaluation's records) is this one.
  """
  return values.reshape((-1,) + values.shape[2:])


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


def _batched_edges(num_graphs: int,
                   num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
  """Senders and receivers of `num_graphs` complete graphs, batched."""
  senders, receivers = fully_connected_edges(num_nodes)
  offsets = num_nodes * np.arange(num_graphs, dtype=np.int32)[:, None]
  return ((offsets + senders).reshape(-1),
          (offsets + receivers).reshape(-1))


def batch_graphs(nodes: jax.Array) -> jraph.GraphsTuple:
  """One fully connected graph per view, batched into a `GraphsTuple`.

  Args:
    nodes: (N, K, F) node features of N views.

  Returns:
    A `GraphsTuple` with (N*K, F) nodes, no edge features, N*K(K-1) edges
    (view n's edges follow `fully_connected_edges(K)` offset by n*K).
  """
  num_graphs, num_nodes, _ = nodes.shape
  senders, receivers = _batched_edges(num_graphs, num_nodes)
  return jraph.GraphsTuple(
      nodes=nodes.reshape(num_graphs * num_nodes, -1),
      edges=None,
      senders=senders,
      receivers=receivers,
      globals=None,
      n_node=np.full(num_graphs, num_nodes, np.int32),
      n_edge=np.full(num_graphs, num_nodes * (num_nodes - 1), np.int32))


def total_nodes(graph: jraph.GraphsTuple) -> int:
  """The static number of nodes of a batched graph."""
  return jax.tree.leaves(graph.nodes)[0].shape[0]


def complete_graph_size(graph: jraph.GraphsTuple) -> int | None:
  """K if `graph` is laid out as `batch_graphs` makes it, else None.

  Decided at trace time from the static (numpy) index arrays; traced
  indices are never taken for complete graphs.
  """
  arrays = (graph.n_node, graph.senders, graph.receivers)
  if not all(isinstance(array, np.ndarray) for array in arrays):
    return None
  n_node = graph.n_node
  if n_node.size == 0 or np.any(n_node != n_node[0]) or n_node[0] < 2:
    return None
  senders, receivers = _batched_edges(n_node.size, int(n_node[0]))
  if not (np.array_equal(graph.senders, senders)
          and np.array_equal(graph.receivers, receivers)):
    return None
  return int(n_node[0])


def _off_diagonal(grid: jax.Array) -> jax.Array:
  """(N, K, K, ...) sender x receiver grids -> (N*K(K-1), ...) edge values.

  The off-diagonal entries in row-major order are the edge order of
  `fully_connected_edges`. Flattened, the diagonal sits at multiples of
  K + 1: dropping the first entry and the last column of a (K - 1, K + 1)
  view drops it with slices and reshapes only (no gather).
  """
  num_graphs, k = grid.shape[:2]
  rest = grid.shape[3:]
  flat = grid.reshape((num_graphs, k * k) + rest)[:, 1:]
  rows = flat.reshape((num_graphs, k - 1, k + 1) + rest)[:, :, :k]
  return rows.reshape((num_graphs * k * (k - 1),) + rest)


def _to_grid(edge_values: jax.Array, num_nodes: int) -> jax.Array:
  """The inverse of `_off_diagonal`, zeros on the diagonal (pads only)."""
  k = num_nodes
  rest = edge_values.shape[1:]
  rows = edge_values.reshape((-1, k - 1, k) + rest)
  no_pad = [(0, 0)] * len(rest)
  rows = jnp.pad(rows, [(0, 0), (0, 0), (0, 1)] + no_pad)
  flat = rows.reshape((rows.shape[0], (k - 1) * (k + 1)) + rest)
  flat = jnp.pad(flat, [(0, 0), (1, 0)] + no_pad)
  return flat.reshape((-1, k, k) + rest)


def pair_sum(sender_values: jax.Array, receiver_values: jax.Array,
             graph: jraph.GraphsTuple) -> jax.Array:
  """Per edge, its sender's value plus its receiver's: (nodes, F) -> (edges, F).

  Args:
    sender_values: (num_nodes, F) values read by the edges a node sends.
    receiver_values: (num_nodes, F) values read by the edges it receives.
    graph: gives the edges.

  Returns:
    (num_edges, F), in the graph's edge order.
  """
  k = complete_graph_size(graph)
  if k is None:
    return sender_values[graph.senders] + receiver_values[graph.receivers]
  features = sender_values.shape[1:]
  grid = (sender_values.reshape((-1, k, 1) + features)
          + receiver_values.reshape((-1, 1, k) + features))
  return _off_diagonal(grid)


def sum_incoming(edge_values: jax.Array, graph: jraph.GraphsTuple) -> jax.Array:
  """Sums edge values at their receivers: (edges, ...) -> (nodes, ...)."""
  k = complete_graph_size(graph)
  if k is None:
    return jraph.segment_sum(edge_values, graph.receivers,
                             num_segments=total_nodes(graph))
  # Sum over the sender axis; the diagonal (no self-loops) holds zeros.
  incoming = _to_grid(edge_values, k).sum(axis=1)
  return incoming.reshape((-1,) + edge_values.shape[1:])


def max_incident(edge_values: jax.Array, graph: jraph.GraphsTuple) -> jax.Array:
  """Max of edge values over all edges touching a node, in or out."""
  num_nodes = total_nodes(graph)
  return jnp.maximum(
      jraph.segment_max(edge_values, graph.senders, num_segments=num_nodes),
      jraph.segment_max(edge_values, graph.receivers, num_segments=num_nodes))
