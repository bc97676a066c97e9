"""Occlusion-Net models; `create_model` builds one from `config.model`,
`from_config` from an experiment config."""

import jax.numpy as jnp
import ml_collections

from occnet_jax import categories
from occnet_jax import keypoints as keypoints_lib
from occnet_jax import shape_basis as shape_basis_lib
from occnet_jax.models.occlusion_net import OcclusionNet


def create_model(model_config: ml_collections.ConfigDict,
                 category: keypoints_lib.Category,
                 shape_basis: shape_basis_lib.ShapeBasis) -> OcclusionNet:
  """Builds the linen `OcclusionNet`.

  Args:
    model_config: `config.model` with keys `heatmap_features`,
      `heatmap_layers`, `heatmap_size`, `hidden`, `dropout`,
      `use_keypoint_type`, `use_encoder`, `decoder_gate`,
      `decoder_gate_threshold`, `decoder_gate_open_rate`,
      `graph_trains_head`, `dtype`
      (docs/design.md).
    category: the keypoint category (K, types).
    shape_basis: the PCA shape basis of the 3D branch (K keypoints).

  Returns:
    The model; call `model.apply(variables, crops, boxes, train=...)`.
  """
  if shape_basis.mean.shape[0] != category.num_keypoints:
    raise ValueError(
        f'The shape basis has {shape_basis.mean.shape[0]} keypoints, the '
        f'category {category.name!r} {category.num_keypoints}.')
  return OcclusionNet(
      category=category,
      shape_basis=shape_basis,
      heatmap_features=model_config.heatmap_features,
      heatmap_layers=model_config.heatmap_layers,
      heatmap_size=model_config.heatmap_size,
      hidden=model_config.hidden,
      dropout_rate=model_config.dropout,
      use_keypoint_type=model_config.use_keypoint_type,
      use_encoder=model_config.use_encoder,
      # A workdir trained before the gate existed has neither key: it ran
      # the ungated decoder, and is read back as it ran.
      decoder_gate=model_config.get('decoder_gate', 'none'),
      decoder_gate_threshold=model_config.get('decoder_gate_threshold', 0.5),
      # Nor a workdir trained before the random opening: it opened none.
      decoder_gate_open_rate=model_config.get('decoder_gate_open_rate', 0.0),
      graph_trains_head=model_config.graph_trains_head,
      dtype=jnp.dtype(model_config.dtype))


def from_config(config: ml_collections.ConfigDict,
                shape_basis: shape_basis_lib.ShapeBasis) -> OcclusionNet:
  """The `OcclusionNet` of an experiment config (`config.model`, category)."""
  return create_model(config.model, categories.get_category(
      config.category), shape_basis)
