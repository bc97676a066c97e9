"""The 3D keypoint graph network (3D-KGNN, paper section 3.2).

A graph encoder reads the 2D-KGNN output graph of one view and predicts the
PCA shape coefficients beta and a perspective camera (focal f, unit
quaternion q, translation t) in the view's box coordinates. The 3D keypoints
are W = b0 + sum_k beta_k sigma_k b_k, and their projection pi(W) is compared
with the 2D-KGNN keypoints by the reprojection loss (self-supervision).

Parametrisation (every output layer starts at zero, so an untrained network
predicts the mean shape seen side-on, centred, at the initial focal/depth):
  - beta = B tanh(a / B), |beta| < B = MAX_SHAPE_COEFFICIENT standard
    deviations: plausible shapes only. Unbounded, beta drifts along the
    similarity ambiguity (a bigger car farther away projects the same): in
    the CPU demo beta reached ~1e3 and t_z ~7e3, every keypoint projected
    onto the box centre, and the 3D branch stopped learning.
  - f = initial_focal * softplus(a) / softplus(0): positive.
  - t = (t_x, t_y, initial_depth * softplus(a_z) / softplus(0)): z > 0, the
    car in front of the camera.
  - q = normalise(q0 + a_q) with q0 a half turn about x, which maps the
    object frame's y-up to the camera's y-down.
With box coordinates in [-1, 1], a 4.5 m car spans the box when
f / t_z ~ 2 / 4.5; the defaults (f = 4, t_z = 9 m) start there.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from occnet_jax import geometry
from occnet_jax import shape_basis as shape_basis_lib
from occnet_jax.models import layers

# Half turn about the x axis, (w, x, y, z).
INITIAL_QUATERNION = np.array([0.0, 1.0, 0.0, 0.0], np.float32)
_SOFTPLUS_AT_ZERO = np.log(2.0)
# Bound on |beta|, in standard deviations of each PCA component.
MAX_SHAPE_COEFFICIENT = 5.0
# The untrained camera (module docstring), also where `shape_fit` starts.
INITIAL_FOCAL = 4.0
INITIAL_DEPTH = 9.0


class KGNN3D(nn.Module):
  """Shape and camera from a keypoint graph.

  Attributes:
    shape_basis: the PCA basis, used as constants.
    hidden: width of every hidden layer.
    dropout_rate: dropout in training.
    initial_focal: focal f of the untrained network (box units).
    initial_depth: t_z of the untrained network (metres).
    dtype: the MLPs' computation dtype (bfloat16 for mixed precision); the
      shape and camera, and everything computed from them, are float32.
  """

  shape_basis: shape_basis_lib.ShapeBasis
  hidden: int
  dropout_rate: float = 0.0
  initial_focal: float = INITIAL_FOCAL
  initial_depth: float = INITIAL_DEPTH
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, aspect: jax.Array, *,
               train: bool) -> dict[str, jax.Array]:
    """Predicts shape and camera for every graph (view) of a batch.

    Args:
      graph: a batch of N graphs with K nodes each (`graphs.batch_graphs`),
        nodes (x, y, ...) in box coordinates.
      aspect: (N,) box aspect s = width / height.
      train: enables dropout.

    Returns:
      A dict with `shape_coefficients` (N, n), `focal` (N,), `quaternion`
      (N, 4), `translation` (N, 3), `keypoints_3d` (N, K, 3) and
      `reprojected` (N, K, 2) in box coordinates.
    """
    nodes = layers.MessagePassing(self.hidden, self.dropout_rate,
                                  keep_nodes=True, dtype=self.dtype,
                                  name='message_passing')(
                                      graph, train=train)
    # Every graph has the same number of nodes: a reshape is the readout's
    # segment mean.
    num_graphs = graph.n_node.shape[0]
    pooled = nodes.reshape(num_graphs, -1, nodes.shape[-1]).mean(axis=1)
    num_components = self.shape_basis.stddevs.shape[0]
    raw = layers.MLP((self.hidden, num_components + 8), self.dropout_rate,
                     kernel_init=nn.initializers.zeros, dtype=self.dtype,
                     name='readout')(pooled, train=train).astype(jnp.float32)
    raw_beta, raw_focal, raw_quaternion, raw_translation = jnp.split(
        raw, np.cumsum([num_components, 1, 4]), axis=-1)
    beta = MAX_SHAPE_COEFFICIENT * jnp.tanh(raw_beta / MAX_SHAPE_COEFFICIENT)
    focal = (self.initial_focal / _SOFTPLUS_AT_ZERO
             * jax.nn.softplus(raw_focal[:, 0]))
    quaternion = raw_quaternion + INITIAL_QUATERNION
    # The epsilon keeps the normalisation differentiable at q = 0.
    quaternion = quaternion * jax.lax.rsqrt(
        jnp.sum(quaternion**2, axis=-1, keepdims=True) + 1e-12)
    translation = jnp.concatenate([
        raw_translation[:, :2],
        self.initial_depth / _SOFTPLUS_AT_ZERO
        * jax.nn.softplus(raw_translation[:, 2:])], axis=-1)
    keypoints_3d = shape_basis_lib.compose(self.shape_basis, beta)
    reprojected = geometry.perspective_projection(
        keypoints_3d, focal, quaternion, translation, aspect)
    return dict(shape_coefficients=beta, focal=focal, quaternion=quaternion,
                translation=translation, keypoints_3d=keypoints_3d,
                reprojected=reprojected)
