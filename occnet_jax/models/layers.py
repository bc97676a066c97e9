"""Building blocks shared by the graph networks: an MLP and a pair layer.

`PairDense` is the first layer of every edge MLP. On a fully connected graph
with K nodes there are K(K-1) directed edges, and the naive layer
`Dense([h_sender, h_receiver])` multiplies each edge's concatenated features
by the same kernel. Splitting the kernel, Dense([h_i, h_j]) = W_a h_i +
W_b h_j + b, computes the two products once per node and gathers them onto
the edges: the same function for K matmuls instead of K(K-1).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
  """Dense layers, each followed by ELU and dropout except a linear last one.

  Attributes:
    features: output width of each layer.
    dropout_rate: dropout after every activation, training only.
    activate_final: also apply ELU and dropout after the last layer (for
      hidden representations that feed another linear layer).
    kernel_init: initialiser of the last layer's kernel (zeros makes a
      residual branch start as the identity).
  """

  features: Sequence[int]
  dropout_rate: float = 0.0
  activate_final: bool = False
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    for layer, width in enumerate(self.features):
      last = layer == len(self.features) - 1
      x = nn.Dense(width, kernel_init=(self.kernel_init if last else
                                       nn.linear.default_kernel_init))(x)
      if not last or self.activate_final:
        x = nn.elu(x)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return x


class PairDense(nn.Module):
  """Dense([h_sender, h_receiver]) evaluated per node, then gathered per edge.

  Attributes:
    features: output width.
  """

  features: int

  @nn.compact
  def __call__(self, nodes: jax.Array, senders: jax.Array,
               receivers: jax.Array) -> jax.Array:
    """Applies the layer to every edge.

    Args:
      nodes: (num_nodes, D) node features.
      senders: (num_edges,) sender node index of each edge.
      receivers: (num_edges,) receiver node index of each edge.

    Returns:
      (num_edges, features) = W_a h_sender + W_b h_receiver + b.
    """
    from_sender = nn.Dense(self.features, name='sender')(nodes)
    from_receiver = nn.Dense(self.features, use_bias=False,
                             name='receiver')(nodes)
    return from_sender[senders] + from_receiver[receivers]


class EdgeMLP(nn.Module):
  """An `MLP` on [h_sender, h_receiver] whose first layer is a `PairDense`.

  Attributes:
    features: output width of each layer (at least two).
    dropout_rate: dropout after every activation, training only.
    activate_final: as in `MLP`.
  """

  features: Sequence[int]
  dropout_rate: float = 0.0
  activate_final: bool = False

  @nn.compact
  def __call__(self, nodes: jax.Array, senders: jax.Array,
               receivers: jax.Array, *, train: bool) -> jax.Array:
    """Returns (num_edges, features[-1]); arguments as in `PairDense`."""
    x = nn.elu(PairDense(self.features[0])(nodes, senders, receivers))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return MLP(self.features[1:], self.dropout_rate,
               self.activate_final)(x, train=train)
