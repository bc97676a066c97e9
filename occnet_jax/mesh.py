"""Triangle meshes for the synthetic data: primitives, merging, padding.

Meshes are built on the host with numpy (they are data, made once per car or
scene) and handed to the jax rasteriser (`data_prep.rendering`) as
`Triangles`, a pytree padded to a fixed triangle budget so that `jit`
compiles once per budget. They sit in the library because a category's
procedural models (`keypoints.Synthesis`, in `occnet_jax/categories/`) are
built from these primitives; nothing here renders.

Conventions: faces are wound counter-clockwise seen from outside, so the
face normal `(v1 - v0) x (v2 - v0)` points out of a closed solid. Every
primitive below is a closed surface (each edge is shared by exactly two
faces; a `quad` is a two-sided sheet), which lets the rasteriser cull back
faces.

Public API:
  Part: per-face part/material ids (body, window, headlight, ...)
  Mesh(vertices, faces, face_colors, object_ids, part_ids)
  Triangles(corners, normals, colors, object_ids, part_ids, valid)  (pytree)
  hexahedron(corners, color, part) -> Mesh      corners (2, 2, 2, 3)
  box(size, center, color, part) -> Mesh
  cylinder(radius, z_range, color, part, segments=12) -> Mesh  (axis z)
  extrusion(profile, z_range, color, part) -> Mesh   convex (x, y) profile
  quad(corners, color, part) -> Mesh            two-sided, four triangles
  merge(meshes) -> Mesh
  transform(mesh, rotation, translation) -> Mesh
  with_object_id(mesh, object_id) -> Mesh
  recolor(mesh, face_mask, color, part) -> Mesh
  random_color(rng, palette, jitter=0.03) -> (3,) jittered palette colour
  face_normals(vertices, faces) -> (F, 3)
  to_triangles(mesh, budget) -> Triangles
  stack_triangles(triangles_list) -> Triangles   (leading batch axis)
"""

import dataclasses
import enum
from collections.abc import Sequence

import flax.struct
import jax
import numpy as np


class Part(enum.IntEnum):
  """What a face is made of; lets data code mask or recolour parts."""
  BODY = 0
  WINDOW = 1
  HEADLIGHT = 2
  TAIL_LIGHT = 3
  TYRE = 4
  RIM = 5
  OTHER = 6


@dataclasses.dataclass(frozen=True)
class Mesh:
  """An indexed triangle mesh with flat per-face attributes (numpy).

  Attributes:
    vertices: (M, 3) float32 positions, metres.
    faces: (F, 3) int32 vertex indices, counter-clockwise from outside.
    face_colors: (F, 3) float32 albedo in [0, 1].
    object_ids: (F,) int32 id of the object each face belongs to.
    part_ids: (F,) int32 `Part` of each face.
  """

  vertices: np.ndarray
  faces: np.ndarray
  face_colors: np.ndarray
  object_ids: np.ndarray
  part_ids: np.ndarray

  def __post_init__(self):
    num_faces = len(self.faces)
    if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
      raise ValueError(f'vertices must be (M, 3), got {self.vertices.shape}.')
    if self.faces.shape != (num_faces, 3):
      raise ValueError(f'faces must be (F, 3), got {self.faces.shape}.')
    if (self.face_colors.shape != (num_faces, 3)
        or self.object_ids.shape != (num_faces,)
        or self.part_ids.shape != (num_faces,)):
      raise ValueError('face attributes must have one row per face.')

  @property
  def num_faces(self) -> int:
    return len(self.faces)

  @property
  def corners(self) -> np.ndarray:
    """(F, 3, 3) the three vertex positions of every face."""
    return self.vertices[self.faces]


@flax.struct.dataclass
class Triangles:
  """Unindexed triangles as the rasteriser reads them, padded to a budget.

  Leading axes beyond the triangle axis (e.g. a batch of cars) are allowed;
  all fields share them.

  Attributes:
    corners: (..., T, 3, 3) float32 vertex positions.
    normals: (..., T, 3) float32 unit outward normals (for shading).
    colors: (..., T, 3) float32 albedo in [0, 1].
    object_ids: (..., T) int32.
    part_ids: (..., T) int32.
    valid: (..., T) bool; False for padding, which is never drawn.
  """

  corners: jax.Array
  normals: jax.Array
  colors: jax.Array
  object_ids: jax.Array
  part_ids: jax.Array
  valid: jax.Array


def _mesh(vertices, faces, color, part) -> Mesh:
  num_faces = len(faces)
  return Mesh(
      vertices=np.asarray(vertices, np.float32).reshape(-1, 3),
      faces=np.asarray(faces, np.int32).reshape(-1, 3),
      face_colors=np.broadcast_to(
          np.asarray(color, np.float32), (num_faces, 3)).copy(),
      object_ids=np.zeros(num_faces, np.int32),
      part_ids=np.full(num_faces, int(part), np.int32),
  )


def _quad_faces(a, b, c, d) -> list[tuple[int, int, int]]:
  """Two triangles of the quad a-b-c-d (counter-clockwise)."""
  return [(a, b, c), (a, c, d)]


def hexahedron(corners, color, part=Part.BODY) -> Mesh:
  """A closed six-faced solid (a box with movable corners), 12 triangles.

  Args:
    corners: (2, 2, 2, 3) positions indexed [ix, iy, iz]: index 1 is the
      larger-coordinate side along that axis (as for an axis-aligned box).
      Each face should stay roughly planar and the solid not inverted.
    color: (3,) albedo, or (6, 3) one per face in the order -x, +x, -y, +y,
      -z, +z.
    part: `Part` of every face.

  Returns:
    The mesh with 8 vertices and 12 faces.
  """
  vertices = np.asarray(corners, np.float32).reshape(8, 3)
  index = lambda ix, iy, iz: 4 * ix + 2 * iy + iz
  faces = []
  faces += _quad_faces(index(0, 0, 0), index(0, 0, 1), index(0, 1, 1),
                       index(0, 1, 0))  # -x
  faces += _quad_faces(index(1, 0, 0), index(1, 1, 0), index(1, 1, 1),
                       index(1, 0, 1))  # +x
  faces += _quad_faces(index(0, 0, 0), index(1, 0, 0), index(1, 0, 1),
                       index(0, 0, 1))  # -y
  faces += _quad_faces(index(0, 1, 0), index(0, 1, 1), index(1, 1, 1),
                       index(1, 1, 0))  # +y
  faces += _quad_faces(index(0, 0, 0), index(0, 1, 0), index(1, 1, 0),
                       index(1, 0, 0))  # -z
  faces += _quad_faces(index(0, 0, 1), index(1, 0, 1), index(1, 1, 1),
                       index(0, 1, 1))  # +z
  color = np.asarray(color, np.float32)
  if color.shape == (6, 3):
    color = np.repeat(color, 2, axis=0)
  return _mesh(vertices, faces, color, part)


def box(size, center=(0.0, 0.0, 0.0), color=(0.5, 0.5, 0.5),
        part=Part.OTHER) -> Mesh:
  """An axis-aligned closed box of the given (3,) size around `center`."""
  half = 0.5 * np.asarray(size, np.float32)
  signs = np.stack(np.meshgrid(*[(-1.0, 1.0)] * 3, indexing='ij'), axis=-1)
  return hexahedron(np.asarray(center, np.float32) + signs * half, color, part)


def cylinder(radius, z_range, color, part=Part.OTHER, segments=12) -> Mesh:
  """A closed prism approximating a cylinder with its axis along z.

  Each cap is a fan around a centre vertex, so the centre of a cap (e.g. a
  wheel hub) is a vertex of the mesh.

  Args:
    radius: circumradius of the polygon, metres.
    z_range: (z0, z1) with z0 < z1, the two cap planes.
    color: (3,) albedo.
    part: `Part` of every face.
    segments: number of sides.

  Returns:
    The mesh with 2 * segments + 2 vertices and 4 * segments faces.
  """
  z0, z1 = z_range
  angles = 2.0 * np.pi * np.arange(segments) / segments
  ring = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=-1)
  vertices = np.concatenate([
      np.concatenate([ring, np.full((segments, 1), z0)], axis=-1),
      np.concatenate([ring, np.full((segments, 1), z1)], axis=-1),
      [[0.0, 0.0, z0], [0.0, 0.0, z1]],
  ])
  low_center, high_center = 2 * segments, 2 * segments + 1
  faces = []
  for i in range(segments):
    j = (i + 1) % segments
    faces += _quad_faces(i, j, segments + j, segments + i)
    faces.append((low_center, j, i))
    faces.append((high_center, segments + i, segments + j))
  return _mesh(vertices, faces, color, part)


def extrusion(profile, z_range, color, part=Part.OTHER) -> Mesh:
  """A closed prism: a convex (x, y) polygon swept from z0 to z1.

  Args:
    profile: (N, 2) convex polygon, counter-clockwise in the (x, y) plane.
    z_range: (z0, z1) with z0 < z1.
    color: (3,) albedo, or (N + 2, 3): one per side (side i joins profile
      points i and i + 1), then the z0 cap and the z1 cap.
    part: `Part` of every face.

  Returns:
    The mesh with 2N vertices and 4N - 4 faces.
  """
  profile = np.asarray(profile, np.float32)
  n = len(profile)
  z0, z1 = z_range
  vertices = np.concatenate([
      np.concatenate([profile, np.full((n, 1), z0, np.float32)], axis=-1),
      np.concatenate([profile, np.full((n, 1), z1, np.float32)], axis=-1),
  ])
  faces = []
  for i in range(n):
    j = (i + 1) % n
    faces += _quad_faces(i, j, n + j, n + i)
  low_cap = [(0, k + 1, k) for k in range(1, n - 1)]
  high_cap = [(n, n + k, n + k + 1) for k in range(1, n - 1)]
  faces += low_cap + high_cap
  color = np.asarray(color, np.float32)
  if color.shape == (n + 2, 3):
    color = np.concatenate([
        np.repeat(color[:n], 2, axis=0),
        np.repeat(color[n:n + 1], n - 2, axis=0),
        np.repeat(color[n + 1:], n - 2, axis=0),
    ])
  return _mesh(vertices, faces, color, part)


def quad(corners, color, part=Part.OTHER) -> Mesh:
  """A planar sheet (e.g. a sign face or the ground) seen from both sides.

  Args:
    corners: (4, 3) corners in counter-clockwise order seen from the front.
    color: (3,) albedo of both sides.
    part: `Part` of every face.

  Returns:
    The mesh: two triangles facing the front and the same two wound the
    other way, so that it is closed (a sheet of zero thickness).
  """
  # The back is split along the other diagonal so that every edge has
  # exactly two faces.
  return _mesh(corners, _quad_faces(0, 1, 2, 3) + _quad_faces(1, 0, 3, 2),
               color, part)


def merge(meshes: Sequence[Mesh]) -> Mesh:
  """Concatenates meshes into one (vertex indices are offset, not shared)."""
  offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
  return Mesh(
      vertices=np.concatenate([m.vertices for m in meshes]),
      faces=np.concatenate(
          [m.faces + offset for m, offset in zip(meshes, offsets)]
      ).astype(np.int32),
      face_colors=np.concatenate([m.face_colors for m in meshes]),
      object_ids=np.concatenate([m.object_ids for m in meshes]),
      part_ids=np.concatenate([m.part_ids for m in meshes]),
  )


def transform(mesh: Mesh, rotation, translation) -> Mesh:
  """Applies x -> rotation @ x + translation to the vertices.

  Args:
    mesh: the mesh.
    rotation: (3, 3) rotation matrix (a reflection would flip the winding).
    translation: (3,) translation.

  Returns:
    The moved mesh; faces and attributes are unchanged.
  """
  vertices = (mesh.vertices.astype(np.float64) @ np.asarray(rotation).T
              + np.asarray(translation))
  return dataclasses.replace(mesh, vertices=vertices.astype(np.float32))


def with_object_id(mesh: Mesh, object_id: int) -> Mesh:
  """The mesh with every face tagged as object `object_id`."""
  return dataclasses.replace(
      mesh, object_ids=np.full(mesh.num_faces, object_id, np.int32))


def recolor(mesh: Mesh, face_mask, color, part) -> Mesh:
  """The mesh with the faces selected by the (F,) mask recoloured.

  Args:
    mesh: the mesh.
    face_mask: (F,) bool, the faces to change.
    color: (3,) new albedo.
    part: new `Part` of those faces.

  Returns:
    The recoloured mesh.
  """
  face_mask = np.asarray(face_mask, bool)
  return dataclasses.replace(
      mesh,
      face_colors=np.where(face_mask[:, None], np.asarray(color, np.float32),
                           mesh.face_colors),
      part_ids=np.where(face_mask, int(part), mesh.part_ids).astype(np.int32))


def random_color(rng: np.random.Generator, palette,
                 jitter: float = 0.03) -> np.ndarray:
  """A colour of the palette with a little Gaussian jitter, (3,) in [0, 1]."""
  color = np.asarray(palette[rng.integers(len(palette))])
  return np.clip(color + rng.normal(scale=jitter, size=3), 0.0, 1.0)


def face_normals(vertices, faces) -> np.ndarray:
  """(F, 3) unit outward normals (zero for degenerate faces)."""
  corners = np.asarray(vertices, np.float64)[faces]
  normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
  length = np.linalg.norm(normal, axis=-1, keepdims=True)
  return normal / np.where(length > 0, length, 1.0)


def to_triangles(mesh: Mesh, budget: int) -> Triangles:
  """Unindexes a mesh and pads it to `budget` triangles for the rasteriser.

  Args:
    mesh: the mesh, at most `budget` faces.
    budget: the fixed triangle count (one compilation per budget).

  Returns:
    `Triangles` of numpy arrays with `budget` rows; rows past the mesh's
    faces are invalid padding.
  """
  if mesh.num_faces > budget:
    raise ValueError(
        f'Mesh has {mesh.num_faces} faces, over the budget of {budget}.')
  pad = budget - mesh.num_faces
  pad_rows = lambda x: np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
  return Triangles(
      corners=pad_rows(mesh.corners.astype(np.float32)),
      normals=pad_rows(face_normals(mesh.vertices, mesh.faces).astype(
          np.float32)),
      colors=pad_rows(mesh.face_colors.astype(np.float32)),
      object_ids=pad_rows(mesh.object_ids.astype(np.int32)),
      part_ids=pad_rows(mesh.part_ids.astype(np.int32)),
      valid=np.arange(budget) < mesh.num_faces,
  )


def stack_triangles(triangles: Sequence[Triangles]) -> Triangles:
  """Stacks equally padded `Triangles` along a new leading batch axis."""
  return jax.tree.map(lambda *xs: np.stack(xs), *triangles)
