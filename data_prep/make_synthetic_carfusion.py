r"""Synthetic multi-camera traffic intersections in the raw CarFusion layout.

    python -m data_prep.make_synthetic_carfusion --output=/tmp/carfusion \
        --train_sequences=2 --validation_sequences=1 --test_sequences=1 \
        --cameras=8 --frames=10 --cars=12 --width=1920 --height=1080 --seed=0

Each sequence is one intersection (`data_prep.scenes`): procedural cars of
every kind drive through on one road, queue on the other and drive off when
its light turns green, or stand parked along the curbs (`--parked_fraction`);
poles, signs and street cabinets line the curbs, pedestrians walk on the
sidewalks and crosswalks, and `--cameras` cameras mounted a few metres high
around it film `--frames` frames. Each split holds whole intersections:
train/, validation/ (for tuning) and test/ never share one. Every frame of
every camera is rendered in full (`data_prep.rendering.rasterizer`) and
written with `data_prep.carfusion_format` exactly as CarFusion is laid out:

  <output>/<split>/<sequence>/images_jpg/<camera>_<frame>.jpg
  <output>/<split>/<sequence>/gt/<camera>_<frame>.txt
  <output>/<split>/<sequence>/bb/<camera>_<frame>.txt
  <output>/<split>/<sequence>/gt_true/<camera>_<frame>.txt  (noisy labels)
  <output>/<split>/<sequence>/calibration.json   (unless --nocalibration)

with <split> one of train, validation and test.

A car is labelled in a view when at least `--min_visible` of its keypoints
are visible. Its keypoints inside the image are written with visibility 1
(visible) or 2 (occluded) and the occlusion kind in the sixth column (self,
other vehicle, other object), from the depth test of
`data_prep.rendering.visibility` against the whole scene; keypoints
outside the frame are written outside the image with kind 4 (truncation),
which the reader keeps as truncated, unlabelled keypoints.

Each labelled car's box in bb/ is what a detector could give
(`visible_box`): the bounding box of its visible pixels in the rendered
frame (cut by occluders, clipped by the frame) and its visible keypoints;
the builder pads it. No occluded keypoint moves it.

With `--label_sigma_visible`, `--label_sigma_occluded` or
`--label_mirror_swap_rate`, gt/ holds simulated hand labels
(`data_prep.annotator`, sigmas in units of the padded box's scale L;
labels are kept inside the image) and gt_true/ the exact positions.

The calibration holds every camera and every car's pose and 3D keypoints per
frame; `--nocalibration` leaves it out, so that the builder poses every view
by PnP as it must for real CarFusion. The counts of each occlusion kind over
the labelled cars, as written, are logged per sequence and printed at the
end; the built set's `data_prep.dataset_report` shows the same mix, less the
views and cars the builder drops (its summary counts them).
"""

import collections
from collections.abc import Sequence
import dataclasses
import functools
import time

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
import numpy as np

from data_prep import annotator
from data_prep import carfusion_format
from data_prep import scenes
from data_prep.rendering import rasterizer
from data_prep.rendering import visibility as visibility_lib
from occnet_jax import cli
from occnet_jax import cropping
from occnet_jax import labels
from occnet_jax import mesh as mesh_lib
from occnet_jax.categories import car as car_lib
from occnet_jax.geometry import cameras as cameras_lib

FLAGS = flags.FLAGS

ObjectKind = visibility_lib.ObjectKind

# Scene triangle counts are padded to a multiple of this, so that sequences
# of similar content share one compilation.
_TRIANGLE_QUANTUM = 1024
_GROUND_COLOR = (0.33, 0.35, 0.33)
_ROAD_COLOR = (0.22, 0.22, 0.24)


@dataclasses.dataclass(frozen=True)
class SceneSettings:
  """What one sequence contains.

  Attributes:
    num_cameras: cameras C.
    num_frames: frames F.
    num_cars: cars.
    num_poles: lamp / traffic-light poles.
    num_signs: road signs.
    num_cabinets: street cabinets, bins and newspaper boxes.
    num_pedestrians: pedestrians.
    image_size: (width, height) of the frames.
    frame_interval: seconds between frames.
    queues_depart: the queued road's cars drive off when its light turns
      green during the sequence (`scenes.place_traffic`).
    parked_fraction: share of the cars parked along the curbs.
    min_visible: a car is labelled in a view with at least this many visible
      keypoints.
    noise_stddev: Gaussian pixel noise (images in [0, 1]).
    label_noise: the simulated annotator of the gt labels
      (`data_prep.annotator`); with noise, gt_true/ keeps the exact
      positions.
  """

  num_cameras: int = 8
  num_frames: int = 10
  num_cars: int = 12
  num_poles: int = 6
  num_signs: int = 6
  num_cabinets: int = 6
  num_pedestrians: int = 12
  image_size: tuple[int, int] = (1920, 1080)
  frame_interval: float = 0.5
  queues_depart: bool = True
  parked_fraction: float = 0.2
  min_visible: int = 3
  noise_stddev: float = 0.02
  label_noise: annotator.AnnotatorNoise = annotator.NOISE_FREE


@dataclasses.dataclass(frozen=True)
class Scene:
  """The content of one sequence in the world frame.

  Attributes:
    cars: the procedural cars; car i has object id i.
    meshes: every object's mesh in its own frame, cars first, tagged with
      its object id.
    object_kinds: (num_objects,) `ObjectKind` per object id.
    poses: (num_objects, F, 4, 4) object -> world transform per frame.
    intrinsics, rotation, translation: (C, 3, 3), (C, 3, 3), (C, 3) cameras,
      world -> camera.
  """

  cars: Sequence[car_lib.Car]
  meshes: Sequence[mesh_lib.Mesh]
  object_kinds: np.ndarray
  poses: np.ndarray
  intrinsics: np.ndarray
  rotation: np.ndarray
  translation: np.ndarray

  @property
  def world_cameras(self) -> np.ndarray:
    """(C, 3, 4) world -> pixel camera matrices."""
    return np.asarray(cameras_lib.projection_matrix(
        self.intrinsics, self.rotation, self.translation), np.float64)


def _ground(street: scenes.Street) -> mesh_lib.Mesh:
  """The ground with the paved roads, slightly raised against z-fighting."""
  extent = street.road_length

  def flat(x_half, z_half, height, color):
    return mesh_lib.quad([(-x_half, height, z_half), (x_half, height, z_half),
                          (x_half, height, -z_half),
                          (-x_half, height, -z_half)], color)

  return mesh_lib.merge([
      flat(extent, extent, 0.0, _GROUND_COLOR),
      flat(extent, street.curb, 0.01, _ROAD_COLOR),
      flat(street.curb, extent, 0.01, _ROAD_COLOR),
  ])


# The intersection: two lanes per direction and a parking strip per curb.
STREET = scenes.Street(parking_width=2.5)


def make_scene(rng: np.random.Generator, settings: SceneSettings,
               street: scenes.Street = STREET) -> Scene:
  """Samples the cars, occluders, their motion and the cameras.

  Args:
    rng: random generator.
    settings: what the sequence contains.
    street: intersection dimensions.

  Returns:
    The scene.
  """
  frames, interval = settings.num_frames, settings.frame_interval
  cars = [car_lib.random_car(rng, object_id=i)
          for i in range(settings.num_cars)]
  car_poses = scenes.place_traffic(
      rng, np.array([car.shape.length for car in cars]), frames, interval,
      street, queues_depart=settings.queues_depart,
      parked_fraction=settings.parked_fraction)
  # Lift each car so that its wheels stand on the road.
  car_poses[..., 1, 3] -= np.array([car.ground_y for car in cars])[:, None]
  furniture = ([scenes.pole_mesh(rng) for _ in range(settings.num_poles)] +
               [scenes.sign_mesh(rng) for _ in range(settings.num_signs)] +
               [scenes.cabinet_mesh(rng) for _ in range(settings.num_cabinets)])
  furniture_poses = np.repeat(scenes.place_street_furniture(
      rng, len(furniture), street)[:, None], frames, axis=1)
  pedestrians = [scenes.pedestrian_mesh(rng)
                 for _ in range(settings.num_pedestrians)]
  pedestrian_poses = scenes.walk_pedestrians(
      rng, len(pedestrians), frames, interval, street)
  kinds = ([ObjectKind.VEHICLE] * len(cars) +
           [ObjectKind.POLE] * settings.num_poles +
           [ObjectKind.SIGN] * settings.num_signs +
           [ObjectKind.SCENERY] * settings.num_cabinets +
           [ObjectKind.PEDESTRIAN] * len(pedestrians) + [ObjectKind.SCENERY])
  meshes = [car.mesh for car in cars] + furniture + pedestrians + [
      _ground(street)]
  meshes = [mesh_lib.with_object_id(m, i) for i, m in enumerate(meshes)]
  ground_poses = np.broadcast_to(np.eye(4), (1, frames, 4, 4))
  intrinsics, rotation, translation = scenes.sample_cameras(
      rng, settings.num_cameras, settings.image_size, street)
  return Scene(
      cars=cars, meshes=meshes, object_kinds=np.array(kinds, np.int32),
      poses=np.concatenate([car_poses, furniture_poses, pedestrian_poses,
                            ground_poses]),
      intrinsics=intrinsics, rotation=rotation, translation=translation)


def world_mesh(scene: Scene, frame: int) -> mesh_lib.Mesh:
  """Every object of the scene placed at one frame, in the world frame."""
  return mesh_lib.merge([
      mesh_lib.transform(m, pose[:3, :3], pose[:3, 3])
      for m, pose in zip(scene.meshes, scene.poses[:, frame])])


def world_keypoints(scene: Scene, frame: int) -> np.ndarray:
  """(N, K, 3) keypoints of every car at one frame, in the world frame."""
  poses = scene.poses[:len(scene.cars), frame]
  points = np.stack([car.keypoints for car in scene.cars])
  return np.einsum('nij,nkj->nki', poses[:, :3, :3], points) + (
      poses[:, None, :3, 3])


@functools.partial(jax.jit, static_argnames=('size',))
def _background(key, *, size):
  return rasterizer.random_background(key, size, num_blobs_side=3)


def visible_box(object_ids: np.ndarray, object_id: int,
                visible_points: np.ndarray) -> np.ndarray:
  """The tight box of what is visible of an object in a rendered view.

  What a detector could give: the object's own pixels (cut by whatever is in
  front of it and clipped by the frame) and its visible keypoints; never an
  occluded keypoint.

  Args:
    object_ids: (H, W) object id per pixel (`rasterizer.Fragments`).
    object_id: the object's id.
    visible_points: (M, 2) its visible keypoints, pixels.

  Returns:
    (4,) float32 box (x0, y0, x1, y1); pixel (col, row) spans
    [col, col + 1] x [row, row + 1].
  """
  rows, cols = np.nonzero(object_ids == object_id)
  corners = np.concatenate([np.stack([cols, rows], -1),
                            np.stack([cols + 1, rows + 1], -1),
                            np.asarray(visible_points).reshape(-1, 2)])
  return np.concatenate([corners.min(axis=0),
                         corners.max(axis=0)]).astype(np.float32)


def _written_positions(pixels: np.ndarray, visibility: np.ndarray,
                       image_size: tuple[int, int]) -> np.ndarray:
  """Pixel positions as gt lines hold them: truncated points off the image.

  A truncated point (visibility 0) is written at its projection when that
  lies outside the image, else (behind the camera, or inside the frame by a
  float32 hair) at (-1, -1): either way outside, a truncation label.
  """
  width, height = image_size
  inside = ((pixels[..., 0] >= 0) & (pixels[..., 0] < width) &
            (pixels[..., 1] >= 0) & (pixels[..., 1] < height))
  off_image = (visibility == labels.Visibility.UNLABELLED) & inside
  return np.where(off_image[..., None], -1.0, pixels)


def generate_sequence(rng: np.random.Generator, sequence_dir: epath.PathLike,
                      settings: SceneSettings, *, calibration: bool = True,
                      scene: Scene | None = None) -> collections.Counter:
  """Renders one sequence and writes it in the CarFusion layout.

  Args:
    rng: random generator of the sequence.
    sequence_dir: `<output>/<split>/<sequence>`, created.
    settings: what the sequence contains.
    calibration: write `calibration.json`; without it the builder poses
      every view by PnP, as for real CarFusion.
    scene: the content to render; None samples it from `rng` (`make_scene`).

  Returns:
    Counts of `labels.OcclusionKind` over the keypoints of the labelled cars,
    as written (truncated keypoints included).
  """
  sequence_dir = epath.Path(sequence_dir)
  if scene is None:
    scene = make_scene(rng, settings)
  camera_names = [f'{c + 1:02d}' for c in range(settings.num_cameras)]
  frame_names = [f'{f:04d}' for f in range(settings.num_frames)]
  world_cameras = scene.world_cameras
  num_faces = sum(m.num_faces for m in scene.meshes)
  budget = -(-num_faces // _TRIANGLE_QUANTUM) * _TRIANGLE_QUANTUM
  sun = np.array([rng.uniform(-1, 1), rng.uniform(0.5, 1.5),
                  rng.uniform(-1, 1)])
  key = jax.random.key(rng.integers(2**31))
  noise_rng = np.random.default_rng(rng.integers(2**63))
  noisy_labels = settings.label_noise != annotator.NOISE_FREE
  background_keys = jax.random.split(key, settings.num_cameras + 1)
  backgrounds = [_background(k, size=tuple(settings.image_size))
                 for k in background_keys[1:]]
  frame_limit = np.asarray(settings.image_size, np.float64) - 1e-3
  counts = collections.Counter()
  for f, frame in enumerate(frame_names):
    start = time.time()
    triangles = mesh_lib.to_triangles(world_mesh(scene, f), budget)
    keypoints_world = world_keypoints(scene, f)
    # (C, N, K) labels of every car in every camera, from the depth test.
    visibility, kinds = map(
        np.asarray, visibility_lib.views_keypoint_visibility(
            triangles, world_cameras, keypoints_world,
            np.arange(len(scene.cars)), scene.object_kinds,
            tuple(settings.image_size)))
    num_labelled = 0
    for c, camera_name in enumerate(camera_names):
      visible = visibility[c] == labels.Visibility.VISIBLE
      cars = np.flatnonzero(visible.sum(axis=-1) >= settings.min_visible)
      if not len(cars):
        # As in CarFusion, a view without a labelled car has no files (an
        # empty gt file would be reported as malformed by the reader).
        continue
      image, fragments = rasterizer.render(
          triangles, world_cameras[c], settings.image_size,
          light_direction=sun, background=backgrounds[c], tile_size=32)
      image = rasterizer.add_noise(
          jax.random.fold_in(background_keys[0], f * settings.num_cameras + c),
          image, settings.noise_stddev)
      object_ids = np.asarray(fragments.object_id)
      pixels = _written_positions(
          np.asarray(cameras_lib.project(world_cameras[c], keypoints_world)[0],
                     np.float64), visibility[c], settings.image_size)
      lines, true_lines, boxes = [], [], {}
      for car in cars:
        box = visible_box(object_ids, car, pixels[car][visible[car]])
        labels_of_car = annotator.annotate(
            pixels[car], visibility[c, car],
            cropping.padded_box(box.reshape(2, 2)), settings.label_noise,
            noise_rng, car_lib.CAR)
        labelled = visibility[c, car] != labels.Visibility.UNLABELLED
        # An annotator clicks inside the image.
        labels_of_car[labelled] = np.clip(labels_of_car[labelled], 0.0,
                                          frame_limit)
        lines += carfusion_format.instance_gt_lines(
            car + 1, labels_of_car, visibility[c, car], kinds[c, car])
        true_lines += carfusion_format.instance_gt_lines(
            car + 1, pixels[car], visibility[c, car], kinds[c, car])
        if np.all(box[2:] > box[:2]):
          boxes[car + 1] = box
        counts.update(kinds[c, car].tolist())
      num_labelled += len(cars)
      carfusion_format.write_view(
          sequence_dir, camera_name, frame,
          np.asarray(rasterizer.to_uint8(image)), lines, boxes=boxes,
          true_lines=true_lines if noisy_labels else None)
    logging.info('%s frame %s: %d labelled car views in %d cameras, %.1f s',
                 sequence_dir.name, frame, num_labelled, settings.num_cameras,
                 time.time() - start)
  if calibration:
    carfusion_format.write_calibration(sequence_dir, _calibration(
        scene, camera_names, frame_names, settings.image_size))
  return counts


def _calibration(scene: Scene, camera_names, frame_names,
                 image_size) -> carfusion_format.SequenceCalibration:
  cameras = {
      name: carfusion_format.CameraCalibration(
          intrinsics=scene.intrinsics[c], rotation=scene.rotation[c],
          translation=scene.translation[c], image_size=tuple(image_size))
      for c, name in enumerate(camera_names)
  }
  poses = {
      frame: {
          car + 1: carfusion_format.ObjectPose(
              rotation=scene.poses[car, f, :3, :3],
              translation=scene.poses[car, f, :3, 3],
              shape_3d=scene.cars[car].keypoints)
          for car in range(len(scene.cars))
      } for f, frame in enumerate(frame_names)
  }
  return carfusion_format.SequenceCalibration(cameras=cameras, poses=poses)


def format_counts(counts: collections.Counter) -> str:
  """One line: the share of each occlusion kind."""
  total = max(sum(counts.values()), 1)
  return ', '.join(
      f'{kind.name.lower()} {counts[kind]} ({100 * counts[kind] / total:.1f}%)'
      for kind in labels.OcclusionKind if kind != labels.OcclusionKind.UNKNOWN)


def generate(output: epath.PathLike, *, num_sequences: dict[str, int],
             settings: SceneSettings, seed: int,
             calibration: bool = True) -> collections.Counter:
  """Writes every split's sequences under `output`.

  Every sequence is an intersection of its own (its own seed and name), so
  no intersection lies in two splits.

  Args:
    output: root of the layout.
    num_sequences: number of sequences per split name.
    settings: what each sequence contains.
    seed: seeds everything; sequence i of the s-th split uses (seed, s, i)
      and is named `synth<s><i:03d>`.
    calibration: write each sequence's `calibration.json`.

  Returns:
    Occlusion-kind counts over all sequences.
  """
  total = collections.Counter()
  for split_index, (split, count) in enumerate(num_sequences.items()):
    for index in range(count):
      name = f'synth{split_index}{index:03d}'
      counts = generate_sequence(
          np.random.default_rng((seed, split_index, index)),
          epath.Path(output) / split / name, settings,
          calibration=calibration)
      logging.info('%s/%s: %s', split, name, format_counts(counts))
      total += counts
  return total


def _define_flags():
  """Defines the command's flags.

  Only when run as a command: the library functions above stay importable
  next to other commands that use the same flag names.
  """
  flags.DEFINE_string('output', None, 'Root directory of the layout.',
                      required=True)
  flags.DEFINE_integer('train_sequences', 2,
                       'Sequences in train/.')
  flags.DEFINE_integer('test_sequences', 1,
                       'Sequences in test/.')
  flags.DEFINE_integer(
      'validation_sequences', 1,
      'Sequences in validation/: whole intersections held out for tuning.')
  flags.DEFINE_integer('cameras', 8, 'Cameras per sequence.')
  flags.DEFINE_integer('frames', 10, 'Frames per sequence.')
  flags.DEFINE_integer('cars', 12, 'Cars per sequence.')
  flags.DEFINE_integer('poles', 6, 'Poles per sequence.')
  flags.DEFINE_integer('signs', 6, 'Signs per sequence.')
  flags.DEFINE_integer(
      'cabinets', 6, 'Street cabinets, bins and newspaper boxes per sequence.')
  flags.DEFINE_integer('pedestrians', 12,
                       'Pedestrians per sequence.')
  flags.DEFINE_integer('width', 1920, 'Image width in pixels.')
  flags.DEFINE_integer('height', 1080, 'Image height in pixels.')
  flags.DEFINE_float('frame_interval', 0.5,
                     'Seconds between frames.')
  flags.DEFINE_bool('queues_depart', True,
                    'The queued road\'s cars drive off when its light turns '
                    'green during the sequence.')
  flags.DEFINE_float('parked_fraction', 0.2,
                     'Share of the cars parked along the curbs.')
  flags.DEFINE_integer('seed', 0, 'Random seed.')
  flags.DEFINE_bool(
      'calibration', True,
      'Write calibration.json; --nocalibration leaves it out, so that the '
      'carfusion builder poses every view by PnP as for real CarFusion.')
  flags.DEFINE_float('label_sigma_visible', 0.0,
                     'Annotator noise of visible labels, per axis, in box '
                     'scales L (data_prep/annotator.py; 0.015 is typical).')
  flags.DEFINE_float('label_sigma_occluded', 0.0,
                     'Annotator noise of occluded labels, in L (typical '
                     '0.05).')
  flags.DEFINE_float('label_mirror_swap_rate', 0.0,
                     'Probability that an occluded label lands on its mirror '
                     'partner (typical 0.05).')


def _label_noise() -> annotator.AnnotatorNoise:
  try:
    return annotator.AnnotatorNoise(
        sigma_visible=FLAGS.label_sigma_visible,
        sigma_occluded=FLAGS.label_sigma_occluded,
        mirror_swap_rate=FLAGS.label_mirror_swap_rate)
  except ValueError as error:
    raise app.UsageError(str(error)) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  settings = SceneSettings(
      num_cameras=FLAGS.cameras, num_frames=FLAGS.frames,
      num_cars=FLAGS.cars, num_poles=FLAGS.poles, num_signs=FLAGS.signs,
      num_cabinets=FLAGS.cabinets,
      num_pedestrians=FLAGS.pedestrians,
      image_size=(FLAGS.width, FLAGS.height),
      frame_interval=FLAGS.frame_interval,
      queues_depart=FLAGS.queues_depart,
      parked_fraction=FLAGS.parked_fraction,
      label_noise=_label_noise())
  counts = generate(FLAGS.output,
                    # Test second, as before validation existed: its
                    # sequences keep their seeds.
                    num_sequences={'train': FLAGS.train_sequences,
                                   'test': FLAGS.test_sequences,
                                   'validation': FLAGS.validation_sequences},
                    settings=settings, seed=FLAGS.seed,
                    calibration=FLAGS.calibration)
  print('occlusion mix over labelled cars:', format_counts(counts))


if __name__ == '__main__':
  _define_flags()
  cli.run(main)
