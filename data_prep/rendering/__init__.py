"""Synthetic imagery: proxy hulls, a jax rasteriser, keypoint visibility.

The meshes rendered come from `occnet_jax.mesh` primitives: a category's
procedural models (`keypoints.Synthesis`, e.g. `occnet_jax.categories.car`)
and the scenes' occluders.

Modules:
  proxy_mesh: a closed hull around a model's keypoints, for keypoint-only
    data.
  rasterizer: tiled z-buffer rasteriser (frames, ROI windows, points).
  visibility: keypoint visibility and occlusion kinds, plus a ray cast.
"""
