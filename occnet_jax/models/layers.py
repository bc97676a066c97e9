"""Building blocks shared by the graph networks: MLPs and message passing.

`PairDense` is the first layer of every edge MLP. On a fully connected graph
with K nodes there are K(K-1) directed edges, and the naive layer
`Dense([h_sender, h_receiver])` multiplies each edge's concatenated features
by the same kernel. Splitting the kernel, Dense([h_i, h_j]) = W_a h_i +
W_b h_j + b, computes the two products once per node and gathers them onto
the edges: the same function for K matmuls instead of K(K-1).

`MessagePassing` is the node -> edge -> node block that both graph networks
start with.

`Dropout` draws each mask element from as few random bits as hold its keep
probability exactly: 1 bit for the paper's rate 0.5, 2 for 0.25 or 0.75, up
to 16 bits, packed 32 / bits to a 32-bit random word. At the paper's sizes
dropout draws a mask element for every one of the 512 features of 132 edges
x 256 views in every edge MLP layer, and on XLA:CPU generating the random
words costs more than the matmuls around them; flax's `nn.Dropout` spends
one word (a float uniform) per element. A keep probability that no 8 bits
hold exactly (0.9, say) is rounded to a multiple of 2^-16 (the rate moves
by at most 2^-17, 7.6e-6), and the kept values are scaled by the inverse
of the probability used, so the layer stays unbiased.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from occnet_jax.models import graphs


_MAX_DRAW_BITS = 16


def draw_bits(keep_probability: float) -> int:
  """The fewest bits of 1, 2, 4, 8 that hold the probability exactly, or 16."""
  for bits in (1, 2, 4, 8):
    if (keep_probability * 2**bits).is_integer():
      return bits
  return _MAX_DRAW_BITS


class Dropout(nn.Module):
  """Inverted dropout with few-bit draws, training only (reads rng 'dropout').

  Attributes:
    rate: probability of zeroing an element (rounded to 2^-16 where no
      fewer bits hold it).
  """

  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    bits = draw_bits(1.0 - self.rate)
    keep = round((1.0 - self.rate) * 2**bits)
    if not train or keep >= 2**bits:
      return x
    if keep == 0:
      return jnp.zeros_like(x)
    size, per_word = x.size, 32 // bits
    words = jax.random.bits(self.make_rng('dropout'),
                            (-(-size // per_word), 1), jnp.uint32)
    # Word i holds draws i * per_word ... from its low bits up.
    shifts = jnp.arange(0, 32, bits, dtype=jnp.uint32)
    draws = (words >> shifts) & (2**bits - 1)
    kept = draws.reshape(-1)[:size].reshape(x.shape) < keep
    return jnp.where(kept, x * (2**bits / keep), 0.0).astype(x.dtype)


class MLP(nn.Module):
  """Dense layers, each followed by ELU and dropout except a linear last one.

  Attributes:
    features: output width of each layer.
    dropout_rate: dropout after every activation, training only.
    activate_final: also apply ELU and dropout after the last layer (for
      hidden representations that feed another linear layer).
    kernel_init: initialiser of the last layer's kernel (zeros makes a
      residual branch start as the identity).
    dtype: computation dtype (bfloat16 for mixed precision; parameters stay
      float32).
  """

  features: Sequence[int]
  dropout_rate: float = 0.0
  activate_final: bool = False
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    for layer, width in enumerate(self.features):
      last = layer == len(self.features) - 1
      x = nn.Dense(width, kernel_init=(self.kernel_init if last else
                                       nn.linear.default_kernel_init),
                   dtype=self.dtype)(x)
      if not last or self.activate_final:
        x = nn.elu(x)
        x = Dropout(self.dropout_rate)(x, train=train)
    return x


class PairDense(nn.Module):
  """Dense([h_sender, h_receiver]) evaluated per node, then gathered per edge.

  Attributes:
    features: output width.
    dtype: computation dtype.
  """

  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, nodes: jax.Array,
               graph: jraph.GraphsTuple) -> jax.Array:
    """Applies the layer to every edge.

    Args:
      nodes: (num_nodes, D) node features.
      graph: gives the edges (its own node features are not read).

    Returns:
      (num_edges, features) = W_a h_sender + W_b h_receiver + b.
    """
    from_sender = nn.Dense(self.features, dtype=self.dtype,
                           name='sender')(nodes)
    from_receiver = nn.Dense(self.features, use_bias=False, dtype=self.dtype,
                             name='receiver')(nodes)
    return graphs.pair_sum(from_sender, from_receiver, graph)


class EdgeMLP(nn.Module):
  """An `MLP` on [h_sender, h_receiver] whose first layer is a `PairDense`.

  Attributes:
    features: output width of each layer (at least two).
    dropout_rate: dropout after every activation, training only.
    activate_final: as in `MLP`.
    dtype: computation dtype.
  """

  features: Sequence[int]
  dropout_rate: float = 0.0
  activate_final: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, nodes: jax.Array, graph: jraph.GraphsTuple, *,
               train: bool) -> jax.Array:
    """Returns (num_edges, features[-1]); arguments as in `PairDense`."""
    x = nn.elu(PairDense(self.features[0], self.dtype)(nodes, graph))
    x = Dropout(self.dropout_rate)(x, train=train)
    return MLP(self.features[1:], self.dropout_rate, self.activate_final,
               dtype=self.dtype)(x, train=train)


class MessagePassing(nn.Module):
  """Node embedding, one round of edge messages, and the node update.

  h_i = f_emb(v_i); h_(i,j) = f_v->e([h_i, h_j]); then per receiver
  v'_j = f_e->v(sum_i h_(i,j)), or f_e->v([h_j, sum_i h_(i,j)]) with
  `keep_nodes`. Every function is a two-layer `MLP` with ELU and dropout
  after each layer.

  Attributes:
    hidden: width of every layer.
    dropout_rate: dropout in training.
    keep_nodes: the node update also reads the node's own embedding.
    dtype: computation dtype.
  """

  hidden: int
  dropout_rate: float = 0.0
  keep_nodes: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, *, train: bool) -> jax.Array:
    """Returns (num_nodes, hidden) node features from `graph.nodes`."""
    width = (self.hidden, self.hidden)
    nodes = MLP(width, self.dropout_rate, activate_final=True,
                dtype=self.dtype, name='node_embedding')(graph.nodes,
                                                         train=train)
    edges = EdgeMLP(width, self.dropout_rate, activate_final=True,
                    dtype=self.dtype, name='vertex_to_edge')(nodes, graph,
                                                             train=train)
    incoming = graphs.sum_incoming(edges, graph)
    if self.keep_nodes:
      incoming = jnp.concatenate([nodes, incoming], -1)
    return MLP(width, self.dropout_rate, activate_final=True,
               dtype=self.dtype, name='edge_to_vertex')(incoming, train=train)
