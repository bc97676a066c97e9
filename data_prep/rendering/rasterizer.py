"""A z-buffered triangle rasteriser in jax, fast on the CPU.

Algorithm (homogeneous rasterisation, Olano and Greer 1997). For a triangle
whose vertices map to homogeneous pixels h_i = P [X_i; 1] (columns of the
3x3 matrix M), the three functions e(x, y) = M^-1 (x, y, 1) are affine in the
pixel position, the pixel ray meets the triangle's plane in front of the
camera iff e0 + e1 + e2 > 0, it passes inside the triangle iff moreover every
e_i >= 0, and e0 + e1 + e2 is then exactly the inverse depth of that
intersection. So no triangle has to be clipped: triangles behind the camera
or crossing its plane come out right, and the near plane is the test
e0 + e1 + e2 <= 1 / near. (The camera is normalised so that the third
homogeneous coordinate is the depth, as for P = K [R | t].)

Speed: the image is cut into square tiles; each tile keeps only the
`capacity` triangles whose screen bounding boxes overlap it (back faces and
edge-on faces culled), and a loop over those slots updates a running
nearest (inverse depth, triangle) for all the tile's pixels at once, so no
points x triangles array is ever stored. Batches of views are vmapped.

The result is exact when no tile overlaps more than `capacity` triangles;
`tile_capacity` finds the smallest sufficient power of two for a batch
(one compilation per value), and `render` does both steps.

Pixel conventions (docs/design.md): pixel (row r, column c) is sampled at
its centre (c + 0.5, r + 0.5). An ROI window of a frame is rendered
directly through its camera `cameras.crop_camera(P, box, S)`, at no cost
that depends on the frame size.

Public API:
  Fragments(triangle_id, object_id, depth)     per-pixel buffers
  rasterize(triangles, camera, size, *, tile_size, capacity, near) -> Fragments
  tile_capacity(triangles, cameras, size, *, tile_size, near) -> int
  rasterize_points(triangles, camera, pixels, *, near) -> (triangle_id, depth)
  shade(fragments, triangles, light_direction, ambient, background)
      -> (H, W, 3) float image
  render(triangles, cameras, size, *, light_direction, ambient, background,
         tile_size, near) -> (image, Fragments)  batched, host-level
  render_windows(triangles, cameras, boxes, crop_size, **render_kwargs)
  random_background(key, size, *, num_blobs_side, texture) -> (H, W, 3)
  add_noise(key, image, stddev) -> image
  to_uint8(image) -> uint8 image
"""

import functools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from occnet_jax import mesh as mesh_lib
from occnet_jax.geometry import cameras as cameras_lib
from occnet_jax.geometry import small_linalg

DEFAULT_NEAR = 0.05
DEFAULT_TILE_SIZE = 16
DEFAULT_AMBIENT = 0.35
# Functions that never pass the inside test: e0 = -1.
_NEVER_INSIDE = np.array([[0.0, 0.0, -1.0]] * 3, np.float32)


@flax.struct.dataclass
class Fragments:
  """What each pixel sees.

  Attributes:
    triangle_id: (..., H, W) int32 index into the `Triangles`, -1 for
      background.
    object_id: (..., H, W) int32 object id of that triangle, -1 for
      background.
    depth: (..., H, W) float32 camera depth of the surface, inf for
      background.
  """

  triangle_id: jax.Array
  object_id: jax.Array
  depth: jax.Array


def _normalize_camera(camera):
  """Scales P so that its third row gives the depth (cameras.project)."""
  m = camera[:3, :3]
  scale = jnp.sign(small_linalg.det3(m)) / jnp.linalg.norm(m[2])
  return camera * scale


def _triangle_setup(camera, triangles: mesh_lib.Triangles, near):
  """Per-triangle set-up for one (normalised) camera.

  Args:
    camera: (3, 4) camera whose third row gives the depth.
    triangles: `Triangles` with T rows.
    near: near-plane depth.

  Returns:
    edge_functions: (T, 3, 3) matrices E_t with E_t (x, y, 1) = (e0, e1,
      e0 + e1 + e2): two edge functions and the inverse depth; rows are
      (0, 0, -1), never inside, for triangles that are not drawable.
    bounds: (T, 4) conservative pixel bounds (x0, y0, x1, y1). A triangle
      with a vertex nearer than the near plane may reach anywhere on screen,
      so its bounds are infinite.
    drawable: (T,) bool: valid, front-facing, not degenerate and not wholly
      nearer than the near plane.
  """
  homogeneous = jnp.einsum('ij,tkj->tki', camera[:, :3], triangles.corners)
  homogeneous = homogeneous + camera[:, 3]
  h0 = homogeneous[:, 0]
  # Edges mapped from the object frame, not differences of the large h_i,
  # so that small distant triangles keep their precision in float32.
  d1, d2 = (jnp.einsum('ij,tj->ti', camera[:, :3],
                       triangles.corners[:, k] - triangles.corners[:, 0])
            for k in (1, 2))
  # Rows of M^-1 for M = [h0 h1 h2] are (h1 x h2, h2 x h0, h0 x h1) / det M;
  # they sum to (h1 - h0) x (h2 - h0), the plane's normal, which gives
  # the inverse depth. Written with the edges d1 = h1 - h0, d2 = h2 - h0:
  normal = jnp.cross(d1, d2)
  rows = jnp.stack([normal + jnp.cross(h0, d2 - d1), jnp.cross(d2, h0)], 1)
  det = jnp.sum(h0 * normal, axis=-1)
  scale = jnp.linalg.norm(h0, axis=-1) * jnp.linalg.norm(normal, axis=-1)
  w = homogeneous[..., 2]
  # det M = det K (x0 . ((x1 - x0) x (x2 - x0))) in camera coordinates, so
  # it is negative exactly when the outward normal faces the camera, and
  # det / scale is the cosine between the viewing ray and the normal (in
  # K-scaled camera space). Every mesh is closed (`mesh` makes quads
  # two-sided), so back faces are never the nearest surface seen from
  # outside and are culled; so are edge-on (degenerate) ones.
  drawable = (triangles.valid & (det < -1e-6 * scale)
              & jnp.any(w > near, axis=-1))
  safe_det = jnp.where(drawable, det, -1.0)
  functions = jnp.concatenate([rows, normal[:, None]], axis=1)
  edge_functions = jnp.where(drawable[:, None, None],
                             functions / safe_det[:, None, None],
                             _NEVER_INSIDE)

  all_in_front = jnp.all(w > near, axis=-1)
  pixels = homogeneous[..., :2] / jnp.where(w > near, w, 1.0)[..., None]
  lower = jnp.where(all_in_front[:, None], jnp.min(pixels, axis=1), -jnp.inf)
  upper = jnp.where(all_in_front[:, None], jnp.max(pixels, axis=1), jnp.inf)
  return edge_functions, jnp.concatenate([lower, upper], axis=-1), drawable


def _power_of_two_at_least(count: int) -> int:
  return 1 << max(0, int(np.ceil(np.log2(max(count, 1)))))


def _nearest(edge_functions, x, y, near):
  """Nearest covering triangle of each point.

  A loop over the triangles keeps a running nearest (inverse depth, slot)
  per point; each step is a few fused vector operations over all points, so
  nothing of size points x triangles is ever stored.

  Args:
    edge_functions: (C, 3, 3) candidate triangles (`_triangle_setup`).
    x, y: pixel positions, any (equal) shape.
    near: near-plane depth.

  Returns:
    (inverse depth, 0 where nothing is hit; int32 slot in 0..C-1 of the
    nearest covering triangle, -1 if none), each with the shape of x.
  """
  def visit(slot, nearest):
    inverse_depth, nearest_slot = nearest
    e0, e1, candidate = (row[0] * x + row[1] * y + row[2]
                         for row in edge_functions[slot])
    e2 = candidate - e0 - e1
    # candidate > inverse_depth >= 0 also rejects rays that meet the plane
    # behind the camera (inverse depth <= 0).
    nearer = ((jnp.minimum(jnp.minimum(e0, e1), e2) >= 0.0)
              & (candidate > inverse_depth) & (candidate <= 1.0 / near))
    return (jnp.where(nearer, candidate, inverse_depth),
            jnp.where(nearer, slot, nearest_slot))

  nearest = (jnp.zeros(x.shape, jnp.float32), jnp.full(x.shape, -1, jnp.int32))
  return jax.lax.fori_loop(0, edge_functions.shape[0], visit, nearest)


def _fragments(triangle_id, inverse_depth, triangles) -> Fragments:
  hit = triangle_id >= 0
  object_id = jnp.asarray(triangles.object_ids)[jnp.maximum(triangle_id, 0)]
  return Fragments(triangle_id=triangle_id,
                   object_id=jnp.where(hit, object_id, -1),
                   depth=jnp.where(hit, 1.0 / inverse_depth, jnp.inf))


def _tile_overlaps(bounds, drawable, size, tile_size):
  """(num_tiles, T) bool: triangle bounds reach a tile's pixel centres."""
  width, height = size
  tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
  tile_x0 = (jnp.arange(tiles_x) * tile_size).astype(jnp.float32)
  tile_y0 = (jnp.arange(tiles_y) * tile_size).astype(jnp.float32)
  # A pixel centre lies in [x0 + 0.5, x0 + tile_size - 0.5].
  overlaps_x = ((bounds[None, :, 0] <= tile_x0[:, None] + tile_size - 0.5)
                & (bounds[None, :, 2] >= tile_x0[:, None] + 0.5))
  overlaps_y = ((bounds[None, :, 1] <= tile_y0[:, None] + tile_size - 0.5)
                & (bounds[None, :, 3] >= tile_y0[:, None] + 0.5))
  overlaps = overlaps_y[:, None, :] & overlaps_x[None, :, :] & drawable
  return overlaps.reshape(tiles_y * tiles_x, -1)


def rasterize(triangles: mesh_lib.Triangles, camera, size, *,
              tile_size=DEFAULT_TILE_SIZE, capacity=None,
              near=DEFAULT_NEAR) -> Fragments:
  """Renders what each pixel of an image sees (pure jax, jit/vmap-able).

  Args:
    triangles: `Triangles` with T rows (no batch axis; vmap for batches).
    camera: (3, 4) camera matrix, object frame -> pixels, any scale.
    size: (width, height) in pixels, static.
    tile_size: side of the square tiles, static.
    capacity: triangles kept per tile, static; None keeps all T (always
      exact). Exact when no tile overlaps more: see `tile_capacity`.
    near: near-plane depth; nearer surface is not drawn.

  Returns:
    `Fragments` with (height, width) buffers.
  """
  width, height = size
  triangles = jax.tree.map(jnp.asarray, triangles)
  num_triangles = triangles.valid.shape[0]
  capacity = num_triangles if capacity is None else min(capacity,
                                                        num_triangles)
  camera = _normalize_camera(camera)
  edge_functions, bounds, drawable = _triangle_setup(camera, triangles, near)
  overlaps = _tile_overlaps(bounds, drawable, size, tile_size)
  if capacity < num_triangles:
    # top_k of 0/1 values keeps overlapping triangles first.
    overlap_values, candidates = jax.lax.top_k(
        overlaps.astype(jnp.float32), capacity)
    candidate_ok = overlap_values > 0
  else:
    candidates = jnp.broadcast_to(jnp.arange(num_triangles),
                                  overlaps.shape)
    candidate_ok = overlaps
  tile_functions = jnp.where(candidate_ok[..., None, None],
                             edge_functions[candidates], _NEVER_INSIDE)

  tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
  offsets = jnp.arange(tile_size, dtype=jnp.float32) + 0.5
  local_y, local_x = jnp.meshgrid(offsets, offsets, indexing='ij')
  tile_y0, tile_x0 = jnp.meshgrid(
      jnp.arange(tiles_y, dtype=jnp.float32) * tile_size,
      jnp.arange(tiles_x, dtype=jnp.float32) * tile_size, indexing='ij')
  x = tile_x0.reshape(-1, 1) + local_x.reshape(1, -1)  # (tiles, pixels)
  y = tile_y0.reshape(-1, 1) + local_y.reshape(1, -1)
  inverse_depth, slots = jax.vmap(functools.partial(_nearest, near=near))(
      tile_functions, x, y)
  triangle_id = jnp.where(
      slots >= 0, jnp.take_along_axis(candidates, jnp.maximum(slots, 0),
                                      axis=1), -1)

  def to_image(values):
    # (ty, tx, py, px) -> (ty py, tx px), cropped to the image.
    values = values.reshape(tiles_y, tiles_x, tile_size, tile_size)
    values = values.transpose(0, 2, 1, 3).reshape(tiles_y * tile_size,
                                                  tiles_x * tile_size)
    return values[:height, :width]

  return _fragments(to_image(triangle_id), to_image(inverse_depth), triangles)


def rasterize_points(triangles: mesh_lib.Triangles, camera, pixels, *,
                     near=DEFAULT_NEAR):
  """What the rays through arbitrary (sub-pixel) positions see first.

  Tests every triangle for every point, with no tiling: meant for a few
  points such as projected keypoints.

  Args:
    triangles: `Triangles` with T rows.
    camera: (3, 4) camera matrix.
    pixels: (N, 2) positions (x, y) in pixels.
    near: near-plane depth.

  Returns:
    (triangle_id (N,) int32, -1 where nothing is hit; depth (N,) float32,
    inf where nothing is hit).
  """
  triangles = jax.tree.map(jnp.asarray, triangles)
  camera = _normalize_camera(camera)
  edge_functions, _, _ = _triangle_setup(camera, triangles, near)
  inverse_depth, triangle_id = _nearest(edge_functions, pixels[:, 0],
                                        pixels[:, 1], near)
  fragments = _fragments(triangle_id, inverse_depth, triangles)
  return fragments.triangle_id, fragments.depth


def _per_view(function, triangles, cameras, *per_view_args):
  """vmaps `function(triangles, camera, *args)` over the views.

  Args:
    function: the function of one view.
    triangles: shared by all views when they have no batch axis, else
      carrying the same leading axes as the cameras.
    cameras: (..., 3, 4) cameras; their leading axes are the views.
    *per_view_args: arrays with the same leading axes as the cameras.

  Returns:
    The results, with the views' leading axes.
  """
  batch_shape = cameras.shape[:-2]
  flatten = lambda x: x.reshape((-1,) + x.shape[len(batch_shape):])
  shared = triangles.valid.ndim == 1
  flat_triangles = triangles if shared else jax.tree.map(flatten, triangles)
  result = jax.vmap(function, in_axes=(None if shared else 0,) + (0,) * (
      1 + len(per_view_args)))(flat_triangles, flatten(cameras),
                               *map(flatten, per_view_args))
  return jax.tree.map(lambda x: x.reshape(batch_shape + x.shape[1:]), result)


@functools.partial(jax.jit, static_argnames=('size', 'tile_size'))
def _max_tile_count(triangles, cameras, near, *, size, tile_size):
  def count(triangles, camera):
    _, bounds, drawable = _triangle_setup(_normalize_camera(camera),
                                          triangles, near)
    return jnp.max(jnp.sum(_tile_overlaps(bounds, drawable, size, tile_size),
                           axis=-1))
  return jnp.max(_per_view(count, triangles, cameras))


def tile_capacity(triangles: mesh_lib.Triangles, cameras, size, *,
                  tile_size=DEFAULT_TILE_SIZE, near=DEFAULT_NEAR) -> int:
  """Smallest power of two (>= 16) of triangles per tile that is exact.

  Args:
    triangles: `Triangles`, shared (T rows) or batched like the cameras.
    cameras: (..., 3, 4) camera matrices.
    size: (width, height) of the images.
    tile_size: side of the tiles.
    near: near-plane depth.

  Returns:
    The capacity to pass to `rasterize` for these views (a host int; the
    powers of two bound the number of compilations).
  """
  count = int(_max_tile_count(triangles, jnp.asarray(cameras, jnp.float32),
                              near, size=tuple(size), tile_size=tile_size))
  return max(16, _power_of_two_at_least(count))


def shade(fragments: Fragments, triangles: mesh_lib.Triangles,
          light_direction, ambient=DEFAULT_AMBIENT, background=None):
  """Flat Lambert shading of rendered fragments.

  Every face gets albedo * (ambient + (1 - ambient) max(0, n . l)) with n
  its outward normal and l the direction towards the light, both in the
  object frame.

  Args:
    fragments: `Fragments` (H, W) from `rasterize` with this camera.
    triangles: the `Triangles` that were rendered.
    light_direction: (3,) direction towards the light, object frame.
    ambient: share of the light that does not depend on orientation.
    background: (H, W, 3) colours where nothing is drawn; black if None.

  Returns:
    (H, W, 3) float32 image in [0, 1].
  """
  light = light_direction / jnp.linalg.norm(light_direction)
  lambert = jnp.maximum(triangles.normals @ light, 0.0)
  face_colors = triangles.colors * (ambient + (1.0 - ambient) * lambert)[
      :, None]
  hit = fragments.triangle_id >= 0
  image = face_colors[jnp.maximum(fragments.triangle_id, 0)]
  if background is None:
    background = jnp.zeros_like(image)
  return jnp.where(hit[..., None], image, background)


@functools.partial(jax.jit,
                   static_argnames=('size', 'tile_size', 'capacity', 'near'))
def _render_views(triangles, cameras, light_directions, ambient, backgrounds,
                  *, size, tile_size, capacity, near):
  def render_view(triangles, camera, light_direction, background):
    fragments = rasterize(triangles, camera, size, tile_size=tile_size,
                          capacity=capacity, near=near)
    image = shade(fragments, triangles, light_direction, ambient, background)
    return image, fragments
  return _per_view(render_view, triangles, cameras, light_directions,
                   backgrounds)


def render(triangles: mesh_lib.Triangles, cameras, size, *, light_direction,
           ambient=DEFAULT_AMBIENT, background=None,
           tile_size=DEFAULT_TILE_SIZE, near=DEFAULT_NEAR):
  """Renders a batch of views exactly (host-level: picks the tile capacity).

  Args:
    triangles: `Triangles`, shared (T rows) or batched like the cameras.
    cameras: (..., 3, 4) camera matrices, object frame -> pixels.
    size: (width, height) of every image.
    light_direction: (3,) or (..., 3) direction towards the light, object
      frame.
    ambient: share of unoriented light in the shading.
    background: None (black), or (H, W, 3) / (..., H, W, 3) float colours.
    tile_size: tile side; 16 suits 64 x 64 windows, 32 to 64 full frames.
    near: near-plane depth.

  Returns:
    (image (..., H, W, 3) float32 in [0, 1], `Fragments` (..., H, W)).
  """
  size = tuple(int(v) for v in size)
  cameras = jnp.asarray(cameras, jnp.float32)
  batch_shape = cameras.shape[:-2]
  width, height = size
  light_directions = jnp.broadcast_to(
      jnp.asarray(light_direction, jnp.float32), batch_shape + (3,))
  if background is None:
    background = jnp.zeros((height, width, 3), jnp.float32)
  backgrounds = jnp.broadcast_to(jnp.asarray(background, jnp.float32),
                                 batch_shape + (height, width, 3))
  capacity = tile_capacity(triangles, cameras, size, tile_size=tile_size,
                           near=near)
  return _render_views(triangles, cameras, light_directions,
                       jnp.float32(ambient), backgrounds, size=size,
                       tile_size=tile_size, capacity=capacity, near=near)


def render_windows(triangles: mesh_lib.Triangles, cameras, boxes, crop_size,
                   **render_kwargs):
  """Renders ROI windows of frames directly at crop_size x crop_size.

  The window (x0, y0, x1, y1) of a frame is resampled to the crop as
  `cameras.crop_camera` defines; nothing outside it is rendered.

  Args:
    triangles: `Triangles`, shared or batched like the cameras.
    cameras: (..., 3, 4) full-frame camera matrices.
    boxes: (..., 4) windows in full-frame pixels.
    crop_size: side S of the square crops.
    **render_kwargs: passed to `render` (light_direction, background, ...).

  Returns:
    (image (..., S, S, 3), `Fragments` (..., S, S)) as `render`.
  """
  crop_cameras = cameras_lib.crop_camera(jnp.asarray(cameras, jnp.float32),
                                         jnp.asarray(boxes, jnp.float32),
                                         crop_size)
  return render(triangles, crop_cameras, (crop_size, crop_size),
                **render_kwargs)


def random_background(key, size, *, num_blobs_side=4, texture=0.08):
  """A textured random background: smooth colour blobs plus fine grain.

  Args:
    key: PRNG key.
    size: (width, height).
    num_blobs_side: the colour field is a num_blobs_side^2 grid of random
      colours, bilinearly interpolated.
    texture: standard deviation of the grain (half-resolution noise).

  Returns:
    (H, W, 3) float32 in [0, 1].
  """
  width, height = size
  blob_key, grain_key = jax.random.split(key)
  blobs = jax.random.uniform(blob_key, (num_blobs_side, num_blobs_side, 3))
  grain = texture * jax.random.normal(
      grain_key, (-(-height // 2), -(-width // 2), 1))
  image = (jax.image.resize(blobs, (height, width, 3), 'linear')
           + jax.image.resize(grain, (height, width, 1), 'linear'))
  return jnp.clip(image, 0.0, 1.0)


def add_noise(key, image, stddev):
  """Adds Gaussian pixel noise to a float image in [0, 1], clipped."""
  noise = stddev * jax.random.normal(key, image.shape, image.dtype)
  return jnp.clip(image + noise, 0.0, 1.0)


def to_uint8(image):
  """Float image in [0, 1] -> uint8 (rounded)."""
  return jnp.round(jnp.clip(image, 0.0, 1.0) * 255.0).astype(jnp.uint8)
