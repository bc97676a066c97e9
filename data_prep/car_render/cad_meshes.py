"""CAD meshes with their keypoints, read for the `car_render` builder.

The paper rendered real CAD meshes (ShapeNet cars). A model here is a mesh
file, OBJ or glTF (`.obj`, `.glb`, `.gltf`; anything trimesh reads as a
triangle mesh), beside a sidecar `<stem>.keypoints.json`:

    {"keypoints": [[x, y, z], ...],    # K points in the category's order,
                                       # or {"<keypoint name>": [x, y, z]}
     "metres_per_unit": 1.0}           # optional, default 1 (metres)

in the car frame (x forward, y up, z lateral with the right side negative),
the frame and units of the mesh. Faces keep their order and winding (the
rasteriser culls back faces: outward counter-clockwise winding, as
`occnet_jax.mesh`); face colours are the file's (face or vertex colours, or
its materials' main colours), quantised to 8 bits as files store them.
`export_model` writes a mesh in this layout (one vertex per face corner, so
that vertex colours are face colours), e.g. a procedural car.
"""

import json
import os

from etils import epath
import numpy as np
import trimesh

from occnet_jax import errors
from occnet_jax import keypoints as keypoints_lib
from occnet_jax import mesh as mesh_lib

MESH_SUFFIXES = ('.obj', '.glb', '.gltf')
SIDECAR_SUFFIX = '.keypoints.json'


class MeshInputError(errors.UserError):
  """A mesh or sidecar file that cannot be used; the message names it."""


def mesh_files(directory: epath.PathLike) -> list[epath.Path]:
  """The mesh files of a directory, sorted by name."""
  return sorted(path for path in epath.Path(directory).iterdir()
                if path.suffix.lower() in MESH_SUFFIXES)


def sidecar(path: epath.PathLike) -> epath.Path:
  """The keypoints file of a mesh file."""
  path = epath.Path(path)
  return path.parent / (path.name[:-len(path.suffix)] + SIDECAR_SUFFIX)


def read_keypoints(path: epath.PathLike,
                   category: keypoints_lib.Category) -> tuple[np.ndarray,
                                                              float]:
  """A sidecar's (K, 3) keypoints and metres per unit (module docstring).

  Raises:
    MeshInputError: a missing or malformed file, naming it.
  """
  try:
    content = json.loads(epath.Path(path).read_text())
    points = content['keypoints']
    if isinstance(points, dict):
      missing = set(category.keypoint_names) - set(points)
      if missing:
        raise ValueError(f'no {sorted(missing)}')
      points = [points[name] for name in category.keypoint_names]
    points = np.asarray(points, np.float64)
    if points.shape != (category.num_keypoints, 3):
      raise ValueError(f'{points.shape} points, not ({category.num_keypoints}'
                       ', 3)')
    scale = float(content.get('metres_per_unit', 1.0))
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise MeshInputError(f'{path}: not a keypoints file of the '
                         f'{category.name} category ({error}).') from None
  return points, scale


def _face_colors(loaded: trimesh.Trimesh) -> np.ndarray:
  """(F, 3) albedo in [0, 1] from the file's colours or materials."""
  visual = loaded.visual
  if not isinstance(visual, trimesh.visual.ColorVisuals):
    visual = visual.to_color()  # Textures: their materials' main colours.
  return np.asarray(visual.face_colors[:, :3], np.float32) / 255.0


def load_model(path: epath.PathLike, category: keypoints_lib.Category,
               ) -> tuple[mesh_lib.Mesh, np.ndarray]:
  """A mesh file and its sidecar's keypoints, in metres.

  Args:
    path: the mesh file.
    category: the keypoints' category.

  Returns:
    (mesh, (K, 3) float64 keypoints), object id 0, parts `Part.OTHER`.

  Raises:
    MeshInputError: an unreadable mesh or sidecar, naming the file.
  """
  points, scale = read_keypoints(sidecar(path), category)
  try:
    loaded = trimesh.load(os.fspath(path), force='mesh', process=False)
  except (OSError, ValueError, KeyError, IndexError) as error:
    raise MeshInputError(f'{path}: not a readable mesh ({error}).') from None
  if not isinstance(loaded, trimesh.Trimesh) or not len(loaded.faces):
    raise MeshInputError(f'{path}: holds no triangles.')
  num_faces = len(loaded.faces)
  mesh = mesh_lib.Mesh(
      vertices=(np.asarray(loaded.vertices, np.float64) * scale).astype(
          np.float32),
      faces=np.asarray(loaded.faces, np.int32),
      face_colors=_face_colors(loaded),
      object_ids=np.zeros(num_faces, np.int32),
      part_ids=np.full(num_faces, int(mesh_lib.Part.OTHER), np.int32))
  return mesh, points * scale


def triangle_budget(mesh: mesh_lib.Mesh, minimum: int) -> int:
  """The padded triangle count: a power of two (few compilations)."""
  return max(minimum, 1 << int(np.ceil(np.log2(max(mesh.num_faces, 1)))))


def export_model(mesh: mesh_lib.Mesh, keypoints_3d: np.ndarray,
                 path: epath.PathLike,
                 category: keypoints_lib.Category) -> None:
  """Writes a mesh file, .obj or .glb, and its sidecar (module docstring)."""
  path = epath.Path(path)
  if path.suffix.lower() not in ('.obj', '.glb'):
    raise ValueError(f'{path}: export writes .obj or .glb.')
  colors = np.round(np.clip(mesh.face_colors, 0, 1) * 255).astype(np.uint8)
  exported = trimesh.Trimesh(mesh.vertices, mesh.faces, face_colors=colors,
                             process=False)
  exported.unmerge_vertices()
  data = exported.export(file_type=path.suffix.lower().lstrip('.'))
  path.write_bytes(data if isinstance(data, bytes) else data.encode())
  sidecar(path).write_text(json.dumps({'keypoints': dict(zip(
      category.keypoint_names, np.asarray(keypoints_3d).tolist()))}))
