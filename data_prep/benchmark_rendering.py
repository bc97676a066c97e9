r"""Speed of the CPU rasteriser: ROI views per second and full-frame time.

    python -m data_prep.benchmark_rendering

Renders batches of 64 x 64 ROI windows of one procedural car (the
car_render workload: a few hundred triangles, shading and a background,
through `rasterizer.render_windows`, tile capacity included) and full
1920 x 1080 frames of a street with 20 cars and poles (the synthetic
CarFusion workload, `rasterizer.render` with 32-pixel tiles). Prints the
median over repeats after a warm-up call that compiles. A benchmark, not a
test: numbers depend on the machine and its load.
"""

import statistics
import time

from absl import flags
import jax
import numpy as np

from data_prep.rendering import rasterizer
from occnet_jax import cli
from occnet_jax import mesh as mesh_lib
from occnet_jax.categories import car as car_lib
from occnet_jax.geometry import cameras

FLAGS = flags.FLAGS


_FRAME_SIZE = (1920, 1080)
_LIGHT = np.array([0.3, 1.0, 0.2])


def _median_seconds(function, repeats):
  jax.block_until_ready(function())  # Compiles.
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(function())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _camera(eye, target, focal, principal_point):
  rotation, translation = cameras.look_at(np.asarray(eye, np.float64),
                                          np.asarray(target, np.float64))
  return cameras.projection_matrix(
      cameras.intrinsics_matrix(focal, np.asarray(principal_point)),
      rotation, translation)


def _roi_views(rng, car, num_views, crop_size):
  """Cameras around the car and square boxes around its image."""
  azimuth = rng.uniform(0, 2 * np.pi, num_views)
  elevation = rng.uniform(0.0, 1.0, num_views)
  distance = rng.uniform(6.0, 15.0, num_views)
  eye = distance[:, None] * np.stack([
      np.cos(elevation) * np.cos(azimuth), np.sin(elevation),
      np.cos(elevation) * np.sin(azimuth)], -1)
  views = _camera(eye, np.zeros_like(eye), rng.uniform(800, 1600, num_views),
                  np.broadcast_to([960.0, 540.0], (num_views, 2)))
  pixels = np.asarray(cameras.project(
      views, np.broadcast_to(car.mesh.vertices,
                             (num_views,) + car.mesh.vertices.shape))[0])
  centre = 0.5 * (pixels.min(1) + pixels.max(1))
  half = 0.55 * np.max(pixels.max(1) - pixels.min(1), axis=-1)
  boxes = np.concatenate([centre - half[:, None], centre + half[:, None]], -1)
  backgrounds = jax.vmap(lambda key: rasterizer.random_background(
      key, (crop_size, crop_size)))(jax.random.split(
          jax.random.key(int(rng.integers(2**31))), num_views))
  return views, boxes, backgrounds


def _street(rng, num_cars):
  """Cars on a ground sheet with poles, seen from a corner 6 m up."""
  meshes = [mesh_lib.quad([(-60, 0, -60), (-60, 0, 60), (60, 0, 60),
                           (60, 0, -60)], (0.35, 0.35, 0.37))]
  for object_id in range(num_cars):
    car = car_lib.random_car(rng, object_id=object_id + 1)
    yaw = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0],
                         [-np.sin(yaw), 0, np.cos(yaw)]])
    position = (rng.uniform(-20, 20), -car.ground_y, rng.uniform(-20, 20))
    meshes.append(mesh_lib.transform(car.mesh, rotation, position))
  for _ in range(6):
    meshes.append(mesh_lib.box((0.2, 5.0, 0.2), (rng.uniform(-15, 15), 2.5,
                                                 rng.uniform(-15, 15))))
  scene = mesh_lib.merge(meshes)
  budget = -(-scene.num_faces // 1024) * 1024
  camera = _camera((28.0, 6.0, 28.0), (0.0, 0.0, 0.0), 1500.0,
                   (960.0, 540.0))
  return mesh_lib.to_triangles(scene, budget), camera, scene.num_faces


def _define_flags():
  """Defines the command's flags.

  Only when run as a command: the library functions above stay importable
  next to other commands that use the same flag names.
  """
  flags.DEFINE_integer('num_views', 256, 'ROI views per batch.')
  flags.DEFINE_integer('crop_size', 64, 'ROI crop side.')
  flags.DEFINE_integer('repeats', 5, 'Timed repeats (median).')
  flags.DEFINE_integer('frame_cars', 20, 'Cars in the frame.')
  flags.DEFINE_integer('frame_tile_size', 32, 'Frame tile side.')
  flags.DEFINE_integer('seed', 0, 'Random seed.')


def main(argv):
  del argv
  rng = np.random.default_rng(FLAGS.seed)
  num_views, crop_size = FLAGS.num_views, FLAGS.crop_size
  car = car_lib.random_car(rng)
  triangles = mesh_lib.to_triangles(car.mesh, car_lib.TRIANGLE_BUDGET)
  views, boxes, backgrounds = _roi_views(rng, car, num_views, crop_size)
  seconds = _median_seconds(
      lambda: rasterizer.render_windows(
          triangles, views, boxes, crop_size, light_direction=_LIGHT,
          background=backgrounds), FLAGS.repeats)
  print(f'ROI views: {num_views / seconds:.0f} views/s '
        f'({crop_size}x{crop_size}, {car.mesh.num_faces} triangles, '
        f'batches of {num_views}, median of {FLAGS.repeats})')

  frame_triangles, camera, num_faces = _street(rng, FLAGS.frame_cars)
  seconds = _median_seconds(
      lambda: rasterizer.render(
          frame_triangles, camera, _FRAME_SIZE, light_direction=_LIGHT,
          tile_size=FLAGS.frame_tile_size), FLAGS.repeats)
  print(f'Frame: {seconds:.2f} s per {_FRAME_SIZE[0]}x{_FRAME_SIZE[1]} frame '
        f'({FLAGS.frame_cars} cars, {num_faces} triangles, '
        f'{FLAGS.frame_tile_size}-pixel tiles, median of {FLAGS.repeats})')


if __name__ == '__main__':
  _define_flags()
  cli.run(main)
