"""Synthetic car imagery: procedural cars, proxy hulls, a jax rasteriser.

Modules:
  mesh: `Mesh`, primitives, merging, padding to `Triangles` budgets.
  procedural_cars: random cars of five kinds with their 12 keypoints.
  proxy_mesh: a closed hull around 12 keypoints, for keypoint-only data.
  rasterizer: tiled z-buffer rasteriser (frames, ROI windows, points).
  visibility: keypoint visibility and occlusion kinds, plus a ray cast.
"""
