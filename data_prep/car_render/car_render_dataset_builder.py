"""The `car_render` TFDS builder: the paper's Car-render self-occlusion set.

It renders any keypoint category with a `keypoints.Synthesis` (`category`
of the builder config; the car unless named): each registered category
other than the car gets `<category>_mini` and `<category>_small` configs.

Each example is one car model seen in `num_views` views (docs/design.md,
"Dataset record"). Views come from distinct directions on a level-5
subdivided icosahedron (upper hemisphere and near-horizontal), at random
focal lengths and distances (`data_prep.viewpoints`); each view's ROI crop is
rendered directly at the crop size inside the view's box, with a random textured background, light and pixel noise. A
keypoint is visible when the depth buffer at its exact projection matches its
depth within the tolerance of `data_prep.rendering.visibility` (paper 4.1:
"we trace a ray toward the object from a pixel and check if the first
intersection is close to the ground truth location"); the data tests check
these labels against an independent float64 ray cast.

The box is what a detector could give (docs/design.md, "Boxes"): the padded
bounding box of the car's silhouette. The car is alone and in front of the
camera, so its silhouette is the union of its projected triangles, whose
bounding box is that of its projected mesh vertices; no keypoint, visible or
occluded, moves it.

Car models: CAD meshes with their keypoints in the manual dir's
`car_meshes/` (`cad_meshes`: OBJ or glTF read by trimesh, each with a
`<stem>.keypoints.json`) when it exists; else the 3D keypoint annotations
of `car_keypoints_3d.npy` (see MANUAL_DOWNLOAD_INSTRUCTIONS) rendered
through a proxy hull mesh when that file exists; else the category's
procedural models (`occnet_jax.categories.car`). The three splits hold
disjoint models.
"""

from collections.abc import Iterator, Sequence
import dataclasses
import functools

from absl import logging
from etils import epath
import jax
import numpy as np
import tensorflow_datasets as tfds

from data_prep import records
from data_prep import viewpoints
from data_prep.car_render import cad_meshes
from data_prep.rendering import proxy_mesh
from data_prep.rendering import rasterizer
from data_prep.rendering import visibility as visibility_lib
from occnet_jax import categories
from occnet_jax import cropping
from occnet_jax import keypoints
from occnet_jax import mesh as mesh_lib
from occnet_jax import shape_basis
from occnet_jax.geometry import cameras as cameras_lib

SPLITS = ('train', 'validation', 'test')
# The paper's split of the 472 annotated CAD cars, and the fractions used
# for any other number of models.
PAPER_NUM_MODELS = 472
PAPER_SPLIT_SIZES = (300, 72, 100)
SPLIT_FRACTIONS = (0.64, 0.15, 0.21)
# Every model is rendered alone: its only object id 0 is the labelled
# instance (a `VEHICLE`, the kind whose keypoints are labelled).
_VEHICLE_ONLY = np.array([visibility_lib.ObjectKind.VEHICLE], np.int32)


@dataclasses.dataclass(kw_only=True)
class CarRenderConfig(tfds.core.BuilderConfig):
  """Which category, how many models and views, and how they are rendered.

  Attributes:
    category: the keypoint category rendered (`occnet_jax.categories`).
    num_procedural_models: (train, validation, test) model counts when no
      shapes file is given.
    num_views: V, views per car.
    crop_size: S, side of the rendered ROI crops.
    image_size: (width, height) of the full frame the views belong to.
    icosphere_level: subdivision level of the viewpoint sphere.
    min_elevation_deg, max_elevation_deg: band of view elevations kept.
    focal_range, fill_range: see `viewpoints.ViewSampling`.
    noise_stddev: range of the Gaussian pixel noise (images in [0, 1]).
    seed: seeds every random choice; a model's views depend only on it and
      the model's index.
  """

  category: str = 'car'
  num_procedural_models: tuple[int, int, int] = (256, 32, 32)
  num_views: int = 6
  crop_size: int = records.DEFAULT_CROP_SIZE
  image_size: tuple[int, int] = (1920, 1080)
  icosphere_level: int = 5
  min_elevation_deg: float = -10.0
  max_elevation_deg: float = 75.0
  focal_range: tuple[float, float] = (0.7, 2.4)
  fill_range: tuple[float, float] = (0.3, 0.8)
  noise_stddev: tuple[float, float] = (0.0, 0.04)
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class CarModel:
  """One car to render.

  Attributes:
    car_id: the model id written to the record.
    index: the model's index in the whole set (seeds its views).
    shape_3d: (K, 3) keypoints, metres, object frame; for procedural cars
      and meshes None until built or read.
    mesh_path: the CAD mesh file (`cad_meshes`), or None.
  """

  car_id: str
  index: int
  shape_3d: np.ndarray | None = None
  mesh_path: str | None = None


def split_sizes(num_models: int) -> tuple[int, int, int]:
  """(train, validation, test) counts: the paper's for 472 models."""
  if num_models == PAPER_NUM_MODELS:
    return PAPER_SPLIT_SIZES
  train = round(SPLIT_FRACTIONS[0] * num_models)
  validation = round(SPLIT_FRACTIONS[1] * num_models)
  return train, validation, num_models - train - validation


def load_manual_shapes(path: epath.PathLike,
                       category: keypoints.Category) -> np.ndarray:
  """Annotated 3D keypoints rescaled to metres.

  The authors' file is in a unit where a car is about 0.78 long; any unit is
  accepted: the shapes are scaled together so that their mean length (x
  extent of the keypoints) is that of the category's mean shape.

  Args:
    path: `.npy` file of (N, K, 3) xyz or (N, K, 6) rows whose last three
      columns are xyz (`shape_basis.load_shapes`).
    category: gives the mean length.

  Returns:
    (N, K, 3) float64 shapes in metres.
  """
  shapes = np.asarray(shape_basis.load_shapes(path), np.float64)
  lengths = np.ptp(shapes[..., 0], axis=-1)
  return shapes * (np.ptp(category.mean_shape[:, 0]) / lengths.mean())


def _split_models(car_ids: Sequence[str],
                  sizes: tuple[int, int, int],
                  shapes: np.ndarray | None,
                  seed: int,
                  mesh_paths: Sequence[str] | None = None,
                  ) -> dict[str, list[CarModel]]:
  """Assigns models to the splits by a seeded permutation."""
  order = np.random.default_rng(seed).permutation(len(car_ids))
  bounds = np.cumsum((0,) + tuple(sizes))
  return {
      split: [CarModel(car_ids[i], int(i),
                       None if shapes is None else shapes[i],
                       None if mesh_paths is None else mesh_paths[i])
              for i in sorted(order[bounds[s]:bounds[s + 1]])]
      for s, split in enumerate(SPLITS)
  }


@functools.partial(jax.jit, static_argnames=('num', 'size'))
def _backgrounds(key, *, num, size):
  return jax.vmap(functools.partial(rasterizer.random_background, size=size))(
      jax.random.split(key, num))


def render_views(rng: np.random.Generator, car_mesh: mesh_lib.Mesh,
                 shape_3d: np.ndarray, directions: np.ndarray,
                 config: CarRenderConfig,
                 triangle_budget: int) -> list[records.View]:
  """Renders one car from `config.num_views` random viewpoints.

  Args:
    rng: random generator of this car's views.
    car_mesh: the car's mesh, object frame, at most `triangle_budget` faces.
    shape_3d: (K, 3) its keypoints.
    directions: candidate viewpoint directions (`viewpoints.view_directions`).
    config: the builder config.
    triangle_budget: padding of the mesh (one compilation per budget).

  Returns:
    The car's views.
  """
  num_views, crop_size = config.num_views, config.crop_size
  sampling = viewpoints.ViewSampling(
      image_size=config.image_size, focal_range=config.focal_range,
      fill_range=config.fill_range)
  cameras = viewpoints.sample_view_cameras(
      rng, directions, num_views, car_mesh.vertices, sampling)
  pixels = np.asarray(cameras_lib.project(cameras, shape_3d)[0], np.float64)
  boxes = np.stack([cropping.padded_box(silhouette) for silhouette in (
      np.asarray(cameras_lib.project(cameras, car_mesh.vertices)[0]))])
  triangles = mesh_lib.to_triangles(car_mesh, triangle_budget)
  key = jax.random.key(rng.integers(2**31))
  background_key, noise_key = jax.random.split(key)
  # Light from anywhere above the horizon, in the car's frame.
  light = rng.normal(size=(num_views, 3))
  light[:, 1] = np.abs(light[:, 1]) + 0.3
  images, _ = rasterizer.render_windows(
      triangles, cameras, boxes, crop_size, light_direction=light,
      ambient=rng.uniform(0.2, 0.5),
      background=_backgrounds(background_key, num=num_views,
                              size=(crop_size, crop_size)))
  noise = rng.uniform(*config.noise_stddev)
  crops = np.asarray(rasterizer.to_uint8(
      rasterizer.add_noise(noise_key, images, noise)))
  visibility, occlusion_kind = map(
      np.asarray, visibility_lib.views_keypoint_visibility(
          triangles, cameras, shape_3d, 0, _VEHICLE_ONLY, config.image_size))
  return [
      records.View(crop=crops[v], box=boxes[v], keypoints=pixels[v],
                   visibility=visibility[v], occlusion_kind=occlusion_kind[v],
                   camera=cameras[v], camera_error=0.0,
                   image_size=config.image_size)
      for v in range(num_views)
  ]


def shapes_file(category: str) -> str:
  """The manual dir's annotated 3D keypoints of a category."""
  return f'{category}_keypoints_3d.npy'


def meshes_dir(category: str) -> str:
  """The manual dir's folder of CAD meshes of a category (`cad_meshes`)."""
  return f'{category}_meshes'


def _other_category_configs() -> list[CarRenderConfig]:
  """`<category>_small` and `<category>_mini` for each non-car category."""
  configs = []
  for name in categories.names():
    if name == 'car' or categories.get_category(name).synthesis is None:
      continue
    configs += [
        CarRenderConfig(
            name=f'{name}_small', category=name,
            description=f'{name}: 256/32/32 models, 6 views, 64 px.'),
        CarRenderConfig(
            name=f'{name}_mini', category=name,
            description=f'{name} at the test config\'s size: 16/4/4 models, '
                        '4 views, 16 px.',
            num_procedural_models=(16, 4, 4), num_views=4, crop_size=16)]
  return configs


class Builder(tfds.core.GeneratorBasedBuilder):
  """Car-render: single cars (or other models) seen from many viewpoints."""

  VERSION = tfds.core.Version('2.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release.',
      '2.0.0': 'Boxes from the silhouette, not from every keypoint; '
               '`true_keypoints`.',
  }
  BUILDER_CONFIGS = [
      CarRenderConfig(
          name='small',
          description='Demo and test size: 256/32/32 cars, 6 views, 64 px.'),
      CarRenderConfig(
          name='full',
          description=('The paper\'s size: 300/72/100 cars (472 models), '
                       '24 views, 96 px crops.'),
          num_procedural_models=PAPER_SPLIT_SIZES, num_views=24, crop_size=96),
      CarRenderConfig(
          name='mini',
          description=('The test config\'s size (occnet_jax/configs/test.py): '
                       '16/4/4 cars, 4 views, 16 px.'),
          num_procedural_models=(16, 4, 4), num_views=4, crop_size=16),
  ] + _other_category_configs()
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Optional. Without a manual dir the models are procedural. To render
  annotated CAD cars instead (the paper's 472 ShapeNet cars), put their 3D
  keypoints in `<manual_dir>/{shapes_file('car')}`: a numpy array (N, 12, 3)
  of xyz, or (N, 12, 6) whose last three columns are xyz, keypoints in
  `categories.car.CAR` order, x forward, y up, z lateral (right side
  negative), any length unit. Another category reads
  `<category>_keypoints_3d.npy`, in its own keypoint order. To render CAD
  meshes (as the paper's ShapeNet renders), put OBJ or glTF files in
  `<manual_dir>/{meshes_dir('car')}/`, each with a `<stem>.keypoints.json`
  (data_prep/car_render/cad_meshes.py); they are used before the `.npy`.
  """

  def __init__(self, *, file_format=tfds.core.FileFormat.ARRAY_RECORD,
               **kwargs):
    # array_record is what `tfds.data_source` and grain read.
    super().__init__(file_format=file_format, **kwargs)

  @property
  def _category(self) -> keypoints.Category:
    return categories.get_category(self.builder_config.category)

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    return self.dataset_info_from_configs(
        features=records.features(config.num_views,
                                  self._category.num_keypoints,
                                  config.crop_size),
        homepage='https://github.com/dineshreddy91/Occlusion_Net',
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    meshes = self._manual_meshes(dl_manager)
    if meshes:
      sizes = split_sizes(len(meshes))
      car_ids = [f'mesh/{path.name}' for path in meshes]
      models = _split_models(car_ids, sizes, None, config.seed,
                             [str(path) for path in meshes])
      return {split: self._generate_examples(models[split])
              for split in SPLITS}
    shapes = self._manual_shapes(dl_manager)
    if shapes is None:
      sizes = config.num_procedural_models
      car_ids = [f'procedural/{i:05d}' for i in range(sum(sizes))]
    else:
      sizes = split_sizes(len(shapes))
      car_ids = [f'annotated/{i:05d}' for i in range(len(shapes))]
    models = _split_models(car_ids, sizes, shapes, config.seed)
    return {split: self._generate_examples(models[split]) for split in SPLITS}

  def _manual_meshes(self, dl_manager) -> list[epath.Path]:
    try:
      directory = dl_manager.manual_dir / meshes_dir(
          self.builder_config.category)
    except AssertionError:  # No manual dir (see `_manual_shapes`).
      return []
    return cad_meshes.mesh_files(directory) if directory.is_dir() else []

  def _manual_shapes(self, dl_manager) -> np.ndarray | None:
    try:
      manual_dir = dl_manager.manual_dir
    except AssertionError:
      # TFDS raises this when the manual dir is missing or empty: no
      # annotated shapes, so procedural models.
      return None
    path = manual_dir / shapes_file(self.builder_config.category)
    if not path.exists():
      logging.info('No %s in %s: procedural models.', path.name, manual_dir)
      return None
    return load_manual_shapes(path, self._category)

  def _generate_examples(self, models: Sequence[CarModel]
                         ) -> Iterator[tuple[str, dict[str, object]]]:
    config, synthesis = self.builder_config, self._category.synthesis
    directions = viewpoints.view_directions(
        config.icosphere_level, config.min_elevation_deg,
        config.max_elevation_deg)
    for model in models:
      rng = np.random.default_rng((config.seed, model.index))
      if model.mesh_path is not None:
        model_mesh, shape_3d = cad_meshes.load_model(model.mesh_path,
                                                     self._category)
        budget = cad_meshes.triangle_budget(model_mesh,
                                            synthesis.triangle_budget)
      elif model.shape_3d is None:
        procedural = synthesis.random_model(rng)
        model_mesh, shape_3d = procedural.mesh, procedural.keypoints
        budget = synthesis.triangle_budget
      else:
        shape_3d = model.shape_3d
        model_mesh = proxy_mesh.proxy_mesh(shape_3d, self._category,
                                           synthesis.random_paint(rng))
        budget = proxy_mesh.triangle_budget(self._category)
      views = render_views(rng, model_mesh, shape_3d, directions, config,
                           budget)
      yield model.car_id, records.make_example(model.car_id, views, shape_3d)
