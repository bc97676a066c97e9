"""The `carfusion` TFDS builder: multi-view car keypoints, CarFusion layout.

Reads real CarFusion data, or our synthetic intersections written in the same
layout (`data_prep.carfusion_format`), from the manual directory, and writes
one example per car instance and frame: the car's views across the cameras
that saw it (docs/design.md, "Dataset record"; V varies per example).

Each view needs a camera from the car's object frame to the image. A
sequence with a calibration file gives it exactly. Otherwise the paper's
virtual pose (section 4.1) is solved by PnP between the view's visible
keypoints and a 3D car shape, with a default focal length and the principal
point at the image centre. With `calibrate_views` (the
`visible_hull_multiview` config) the 3D shape is each car's own instead, as
the paper's preprocessing has it: each car's views are the views of its
instance id across the cameras of a frame, and
`data_prep.multiview_calibration` reconstructs each car from its views and
then the whole sequence: the cars of one image share its camera's pose, and
a bundle adjustment refines the poses, one focal length per camera shared
over its frames and the cars' 3D keypoints together; the shape basis (or
the mean car) only initialises that and fills keypoints seen in fewer than
two views, and views that do not converge are dropped, counted and logged
with their file. Stray
uncalibrated views of a calibrated sequence always get the mean-shape PnP.
Cars with fewer than 3 usable views are skipped
(the trifocal loss needs 3). Every skipped or substituted piece of data is
counted by reason and the counts are logged at the end of each split.

Each view's box is what a detector could give (docs/design.md, "Boxes"):
the car's box from the sequence's `bb/` files when it has them (our
generator writes the box of the car's visible pixels), else the hull of the
car's visible keypoints, the fallback for real CarFusion; either is padded
by `box_padding`. No occluded label ever moves a box. Exact positions from
`gt_true/`, when present, become `true_keypoints` for evaluation.
"""

from collections.abc import Iterable, Iterator
import dataclasses
import itertools

from absl import logging
from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from data_prep import carfusion_format
from data_prep import multiview_calibration
from data_prep import records
from occnet_jax import cropping
from occnet_jax import geometry
from occnet_jax import labels
from occnet_jax import shape_basis
from occnet_jax.categories import car as car_lib

# Real CarFusion has train/ and test/; our synthetic intersections also hold
# out whole ones in validation/.
SPLITS = ('train', 'validation', 'test')
MIN_VIEWS = 3
MIN_PNP_POINTS = 4
# Boxes thinner than this (pixels) would make box coordinates blow up.
MIN_BOX_SIZE = 2.0

BUILD_ISSUES = {
    **carfusion_format.PARSE_ISSUES,
    'sequence_without_calibration':
        'sequence without calibration.json: PnP poses',
    'unreadable_calibration': 'malformed calibration.json: PnP poses',
    'view_without_calibrated_pose':
        'view whose camera or car pose is not calibrated, or whose image size '
        'differs from the calibration: PnP pose',
    'too_few_points_for_pnp':
        f'uncalibrated view with fewer than {MIN_PNP_POINTS} visible points: '
        'view dropped',
    'pnp_failed': 'PnP found no pose: view dropped',
    'view_not_converged':
        'uncalibrated view whose pose does not converge (mean reprojection '
        f'error above {multiview_calibration.MAX_REPROJECTION_ERROR} L '
        'against its car\'s reconstructed 3D keypoints): view dropped',
    'sequence_without_boxes':
        'sequence without bb/: boxes from the visible keypoints',
    'car_without_box':
        'car without a valid line in its bb file: box from its visible '
        'keypoints',
    'true_positions_mismatch':
        'gt_true file missing or labelling other keypoints than gt: the '
        'labels stand for the true positions',
    'degenerate_box':
        f'box narrower or lower than {MIN_BOX_SIZE} px (e.g. fewer than 2 '
        'visible points and no bb/ box): view dropped',
    'too_few_views':
        f'car with fewer than {MIN_VIEWS} usable views: car dropped',
}

Example = dict[str, object]


@dataclasses.dataclass
class CarfusionConfig(tfds.core.BuilderConfig):
  """How the raw views become records.

  Attributes:
    crop_size: S, side of the square crops.
    box_padding: see `cropping.padded_box`.
    focal_in_widths: focal length of uncalibrated views, in units of the
      image width (1.0: a 53 degree horizontal field of view): where each
      camera's estimate starts, or with `calibrate_views=False` the focal
      length of every uncalibrated view.
    shape_basis_path: a fitted shape basis (`occnet_jax.shape_basis.save`)
      of other cars, whose mean is the first 3D shape of every car and
      whose components fill keypoints seen in fewer than two views; '' for
      the mean shape of `categories.car.CAR` without components.
    calibrate_views: pose the views of uncalibrated sequences against each
      car's own 3D keypoints, reconstructed from its views, with a focal
      length estimated per camera (`multiview_calibration`); False: PnP of
      every view against the mean shape at `focal_in_widths`. Off by
      default until the reproduction's runs, trained on the mean-shape
      poses, are rerun on it; it brings the trifocal targets much closer to
      the true positions (data_prep/carfusion/README.md, "Cameras without
      calibration").
    use_box_files: read each car's box from bb/ when the sequence has one;
      False: always the hull of its visible keypoints. A car's visible pixels
      show more of it than its visible keypoints do (RESULTS.md, "Boxes a
      detector could give"), and human-drawn bb/ boxes may cover hidden
      parts, so False is the conservative rule.
  """
  crop_size: int = records.DEFAULT_CROP_SIZE
  box_padding: float = cropping.BOX_PADDING
  focal_in_widths: float = 1.0
  shape_basis_path: str = ''
  use_box_files: bool = True
  calibrate_views: bool = False


def pnp_intrinsics(image_size: tuple[int, int],
                   focal_in_widths: float) -> np.ndarray:
  """(3, 3) intrinsics of an uncalibrated view: principal point at the centre.

  Args:
    image_size: (width, height) in pixels.
    focal_in_widths: focal length in image widths.

  Returns:
    K in float64.
  """
  width, height = image_size
  return np.asarray(
      geometry.intrinsics_matrix(focal_in_widths * width,
                                np.array([width / 2, height / 2])), np.float64)


def pnp_shape(config: CarfusionConfig) -> np.ndarray:
  """(K, 3) object-frame car shape that uncalibrated views are posed against."""
  if config.shape_basis_path:
    return np.asarray(shape_basis.load(config.shape_basis_path).mean,
                      np.float64)
  return np.asarray(car_lib.CAR.mean_shape, np.float64)


def shape_components(config: CarfusionConfig) -> np.ndarray | None:
  """(n, K, 3) basis components times their standard deviations, or None."""
  if not config.shape_basis_path:
    return None
  basis = shape_basis.load(config.shape_basis_path)
  return np.asarray(basis.components * basis.stddevs[:, None, None],
                    np.float64)


@dataclasses.dataclass(frozen=True)
class _ViewLabels:
  """The labels and boxes of a view's cars, read before its image.

  Attributes:
    files: the view's files.
    image_size: (width, height) from the image file's header.
    labels: labels by instance id.
    boxes: tight detector boxes by instance id, or None without bb/.
    true_labels: exact positions by instance id (gt_true/), or None.
  """
  files: carfusion_format.ViewFiles
  image_size: tuple[int, int]
  labels: dict[int, carfusion_format.InstanceLabels]
  boxes: dict[int, np.ndarray] | None
  true_labels: dict[int, carfusion_format.InstanceLabels] | None


@dataclasses.dataclass(frozen=True)
class _LabelledView:
  """A view's labels and its decoded image.

  Attributes:
    read: the view's files, labels and boxes.
    image: (H, W, 3) uint8 RGB.
  """
  read: _ViewLabels
  image: np.ndarray

  @property
  def files(self) -> carfusion_format.ViewFiles:
    return self.read.files

  @property
  def labels(self) -> dict[int, carfusion_format.InstanceLabels]:
    return self.read.labels

  @property
  def boxes(self) -> dict[int, np.ndarray] | None:
    return self.read.boxes

  @property
  def true_labels(self) -> dict[int, carfusion_format.InstanceLabels] | None:
    return self.read.true_labels

  @property
  def image_size(self) -> tuple[int, int]:
    return self.image.shape[1], self.image.shape[0]


# A view's camera by (camera, frame, instance id): (camera matrix,
# reprojection error), or the `BUILD_ISSUES` reason it has none.
ReconstructedCameras = dict[tuple[str, str, int],
                            tuple[np.ndarray, float] | str]
_CALIBRATION_FAILURE_ISSUES = {
    'too_few_points': 'too_few_points_for_pnp',
    'pnp_failed': 'pnp_failed',
    'not_converged': 'view_not_converged',
}


def reconstruct_cameras(views: Iterable[_ViewLabels], shape: np.ndarray,
                        components: np.ndarray | None,
                        config: CarfusionConfig) -> ReconstructedCameras:
  """The cameras of an uncalibrated sequence's views of cars.

  The views of one car are its instance id's views across the cameras of a
  frame, and the cars of one image share its camera's pose (a shot);
  `multiview_calibration.calibrate` reconstructs them.

  Args:
    views: every labelled view of the sequence.
    shape: (K, 3) first 3D keypoints of every car (`pnp_shape`).
    components: its basis components (`shape_components`), or None.
    config: the builder config.

  Returns:
    Each car view's camera, or the reason it has none.
  """
  keys, car_views = [], []
  for view in views:
    for instance_id, instance in sorted(view.labels.items()):
      keys.append((view.files.camera, view.files.frame, instance_id))
      car_views.append(multiview_calibration.CarView(
          camera=view.files.camera, car=(view.files.frame, instance_id),
          shot=(view.files.camera, view.files.frame),
          keypoints=instance.keypoints.astype(np.float64),
          visible=instance.visibility == labels.Visibility.VISIBLE,
          image_size=view.image_size))
  result = multiview_calibration.calibrate(
      car_views, shape, components,
      initial_focal_in_widths=config.focal_in_widths)
  cameras = {}
  for index, key in enumerate(keys):
    if index in result.cameras:
      cameras[key] = (result.cameras[index],
                      result.reprojection_errors[index])
    else:
      cameras[key] = _CALIBRATION_FAILURE_ISSUES[result.failures[index]]
  logging.info('focal lengths (image widths) by camera: %s', {
      camera: round(focal / car_views[0].image_size[0], 3)
      for camera, focal in sorted(result.focal_lengths.items())})
  return cameras


def _read_calibration(
    sequence_dir: epath.Path, issues: carfusion_format.Issues
) -> carfusion_format.SequenceCalibration | None:
  try:
    return carfusion_format.read_calibration(sequence_dir)
  except FileNotFoundError:
    issues.report('sequence_without_calibration', str(sequence_dir))
  except carfusion_format.CalibrationError as error:
    issues.report('unreadable_calibration', str(sequence_dir), str(error))
  return None


def _view_camera(view: _LabelledView, instance_id: int,
                 calibration: carfusion_format.SequenceCalibration | None,
                 reconstructed: ReconstructedCameras | None,
                 shape: np.ndarray, config: CarfusionConfig,
                 issues: carfusion_format.Issues
                 ) -> tuple[np.ndarray, float] | None:
  """(camera, reprojection error) of one car in one view, or None."""
  where = f'{view.files.gt_path} car {instance_id}'
  if reconstructed is not None:
    camera = reconstructed[view.files.camera, view.files.frame, instance_id]
    if isinstance(camera, str):
      issues.report(camera, where)
      return None
    return camera
  if calibration is not None:
    camera = calibration.object_camera(view.files.camera, view.files.frame,
                                       instance_id)
    calibrated = calibration.cameras.get(view.files.camera)
    if camera is None:
      issues.report('view_without_calibrated_pose', where,
                    'camera or car pose not in the calibration')
    elif calibrated.image_size != view.image_size:
      issues.report('view_without_calibrated_pose', where,
                    f'image size {view.image_size}, calibrated '
                    f'{calibrated.image_size}')
    else:
      return camera, 0.0
  instance = view.labels[instance_id]
  visible = instance.visibility == labels.Visibility.VISIBLE
  if visible.sum() < MIN_PNP_POINTS:
    issues.report('too_few_points_for_pnp', where,
                  f'{visible.sum()} visible points')
    return None
  intrinsics = pnp_intrinsics(view.image_size, config.focal_in_widths)
  try:
    pose = geometry.solve_pnp(shape[visible], instance.keypoints[visible],
                              intrinsics)
  except geometry.PnPError as error:
    issues.report('pnp_failed', where, str(error))
    return None
  return pose.projection, pose.reprojection_error


def car_box(view: _LabelledView, instance_id: int, config: CarfusionConfig,
            issues: carfusion_format.Issues) -> np.ndarray | None:
  """The padded box of one car in one view, or None when there is none.

  The view's bb/ box of the car, else the hull of its visible keypoints: what
  a detector could give. Occluded labels never take part.
  """
  where = f'{view.files.gt_path} car {instance_id}'
  instance = view.labels[instance_id]
  if view.boxes is not None and instance_id in view.boxes:
    tight = view.boxes[instance_id].reshape(2, 2)
  else:
    if view.boxes is not None:
      issues.report('car_without_box', where)
    tight = instance.keypoints[
        instance.visibility == labels.Visibility.VISIBLE]
  box = (cropping.padded_box(tight, config.box_padding) if len(tight) else
         np.zeros(4, np.float32))
  if np.any(box[2:] - box[:2] < MIN_BOX_SIZE):
    issues.report('degenerate_box', where, f'box {box}')
    return None
  return box


def _true_keypoints(view: _LabelledView, instance_id: int,
                    issues: carfusion_format.Issues) -> np.ndarray | None:
  """Exact positions of a car's labels from gt_true/, or None."""
  if view.true_labels is None:
    return None
  instance = view.labels[instance_id]
  true = view.true_labels.get(instance_id)
  if true is None or np.any(true.visibility != instance.visibility):
    issues.report('true_positions_mismatch',
                  f'{view.files.gt_path} car {instance_id}')
    return None
  return true.keypoints


def _car_view(view: _LabelledView, instance_id: int,
              calibration: carfusion_format.SequenceCalibration | None,
              reconstructed: ReconstructedCameras | None,
              shape: np.ndarray, config: CarfusionConfig,
              issues: carfusion_format.Issues) -> records.View | None:
  """The record view of one car in one view, or None when it is unusable."""
  instance = view.labels[instance_id]
  box = car_box(view, instance_id, config, issues)
  if box is None:
    return None
  camera = _view_camera(view, instance_id, calibration, reconstructed, shape,
                        config, issues)
  if camera is None:
    return None
  camera_matrix, camera_error = camera
  return records.View(
      crop=cropping.extract_crop(view.image, box, config.crop_size),
      box=box,
      keypoints=instance.keypoints,
      visibility=instance.visibility,
      occlusion_kind=instance.occlusion_kind,
      camera=camera_matrix,
      camera_error=camera_error,
      image_size=view.image_size,
      true_keypoints=_true_keypoints(view, instance_id, issues))


def _has_box_files(sequence_dir: epath.Path, config: CarfusionConfig) -> bool:
  return (config.use_box_files
          and (sequence_dir / carfusion_format.BOX_DIR).is_dir())


def _image_size(path: epath.Path,
                issues: carfusion_format.Issues) -> tuple[int, int] | None:
  """(width, height) from an image file's header, or None (counted)."""
  try:
    with path.open('rb') as file, Image.open(file) as image:
      return image.size
  except (OSError, Image.UnidentifiedImageError) as error:
    issues.report('unreadable_image', str(path), str(error))
    return None


def _read_labels(
    views: Iterable[carfusion_format.ViewFiles], sequence_dir: epath.Path,
    config: CarfusionConfig,
    issues: carfusion_format.Issues) -> list[_ViewLabels]:
  """The labels and boxes of every view whose image header reads."""
  has_boxes = _has_box_files(sequence_dir, config)
  has_true = (sequence_dir / carfusion_format.TRUE_GT_DIR).is_dir()
  read = []
  for files in views:
    image_size = _image_size(files.image_path, issues)
    if image_size is None:
      continue
    instances = carfusion_format.read_gt_file(
        files.gt_path, image_size=image_size, issues=issues)
    box_path, true_path = carfusion_format.side_paths(
        sequence_dir, files.camera, files.frame)
    boxes = true_labels = None
    if has_boxes:
      # A view without a bb file has no box for any of its cars.
      boxes = (carfusion_format.read_box_file(box_path, issues)
               if box_path.exists() else {})
    if has_true:
      true_labels = (carfusion_format.read_gt_file(
          true_path, image_size=image_size, issues=issues)
                     if true_path.exists() else {})
    read.append(_ViewLabels(files, image_size, instances, boxes, true_labels))
  return read


def _frame_views(read: Iterable[_ViewLabels],
                 issues: carfusion_format.Issues) -> list[_LabelledView]:
  """The views of a frame with their decoded images."""
  labelled_views = []
  for view in read:
    image = carfusion_format.read_image(view.files.image_path, issues)
    if image is not None:
      labelled_views.append(_LabelledView(view, image))
  return labelled_views


def sequence_examples(sequence_dir: epath.PathLike, config: CarfusionConfig,
                      shape: np.ndarray, issues: carfusion_format.Issues
                      ) -> Iterator[tuple[str, Example]]:
  """The examples of one sequence, one per car instance and frame.

  Args:
    sequence_dir: the sequence's directory in the layout.
    config: the builder config.
    shape: (K, 3) first 3D car shape of uncalibrated views (`pnp_shape`).
    issues: tally of everything skipped or substituted.

  Yields:
    (key, example) with key = car_id = '<sequence>/<frame>/<instance>'.
  """
  sequence_dir = epath.Path(sequence_dir)
  calibration = _read_calibration(sequence_dir, issues)
  if config.use_box_files and not (
      sequence_dir / carfusion_format.BOX_DIR).is_dir():
    issues.report('sequence_without_boxes', str(sequence_dir))
  read = _read_labels(carfusion_format.list_views(sequence_dir, issues),
                      sequence_dir, config, issues)
  reconstructed = None
  if calibration is None and config.calibrate_views:
    reconstructed = reconstruct_cameras(read, shape, shape_components(config),
                                        config)
  for frame, frame_read in itertools.groupby(read, lambda v: v.files.frame):
    frame_views = _frame_views(frame_read, issues)
    instance_ids = sorted(set().union(*(v.labels for v in frame_views)))
    for instance_id in instance_ids:
      car_id = labels.carfusion_car_id(sequence_dir.name, frame, instance_id)
      car_views = []
      for view in frame_views:
        if instance_id in view.labels:
          car_view = _car_view(view, instance_id, calibration, reconstructed,
                               shape, config, issues)
          if car_view is not None:
            car_views.append(car_view)
      if len(car_views) < MIN_VIEWS:
        issues.report('too_few_views', car_id,
                      f'{len(car_views)} usable views')
        continue
      pose = (None if calibration is None else
              calibration.poses.get(frame, {}).get(instance_id))
      shape_3d = None if pose is None else pose.shape_3d
      yield car_id, records.make_example(car_id, car_views, shape_3d)


def split_examples(split_dir: epath.PathLike, config: CarfusionConfig,
                   issues: carfusion_format.Issues
                   ) -> Iterator[tuple[str, Example]]:
  """The examples of every sequence of a split directory, in name order.

  Args:
    split_dir: e.g. `<manual_dir>/train`.
    config: the builder config.
    issues: tally of everything skipped or substituted.

  Yields:
    (key, example) pairs; see `sequence_examples`.
  """
  shape = pnp_shape(config)
  for sequence_dir in sorted(epath.Path(split_dir).iterdir()):
    if sequence_dir.is_dir():
      yield from sequence_examples(sequence_dir, config, shape, issues)


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for the CarFusion multi-view keypoint data."""

  VERSION = tfds.core.Version('3.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release.',
      '2.0.0': 'Boxes from bb/ or the visible keypoints, never occluded '
               'ones; truncation labels; `true_keypoints` from gt_true/.',
      '3.0.0': 'A validation split from validation/; the '
               'visible_hull_multiview config poses uncalibrated views '
               'against each car\'s own triangulated 3D keypoints, one '
               'focal length per camera.',
  }
  BUILDER_CONFIGS = [
      CarfusionConfig(
          name='default',
          description='64x64 crops; PnP against the mean car shape where '
          'uncalibrated; boxes from bb/ where present.'),
      CarfusionConfig(
          name='visible_hull',
          description='As default, but every box is the padded hull of the '
          "car's visible keypoints; bb/ is not read.",
          use_box_files=False),
      CarfusionConfig(
          name='visible_hull_multiview',
          description='As visible_hull, but uncalibrated views are posed '
          "against each car's own 3D keypoints, triangulated from its "
          'views, with a focal length per camera.',
          use_box_files=False, calibrate_views=True),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put the CarFusion data (http://www.cs.cmu.edu/~ILIM/projects/IM/CarFusion/),
  or synthetic data from `data_prep.make_synthetic_carfusion`, in the manual
  directory (default `~/tensorflow_datasets/downloads/manual/`) as
  `carfusion/{train,test}/<sequence>/images_jpg/<camera>_<frame>.jpg` and
  `.../gt/<camera>_<frame>.txt` (the `carfusion/` level may be omitted).
  Optional `.../bb/<camera>_<frame>.txt` give the boxes, `gt_true/` exact
  positions and `<sequence>/calibration.json` exact cameras; see
  data_prep/carfusion/README.md. A `validation/` directory of whole
  sequences (our synthetic data writes one) becomes the validation split.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=records.features(
            num_views=None, num_keypoints=car_lib.CAR.num_keypoints,
            crop_size=self.builder_config.crop_size),
        supervised_keys=None,
        homepage='http://www.cs.cmu.edu/~ILIM/projects/IM/CarFusion/',
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = dl_manager.manual_dir
    if (root / 'carfusion').is_dir():
      root = root / 'carfusion'
    splits = {split: self._generate_examples(root / split)
              for split in SPLITS if (root / split).is_dir()}
    if not splits:
      raise FileNotFoundError(
          f'No {", ".join(SPLITS[:-1])} or {SPLITS[-1]} directory in '
          f'{root}.\n'
          f'{self.MANUAL_DOWNLOAD_INSTRUCTIONS}')
    return splits

  def _generate_examples(self, split_dir: epath.Path):
    issues = carfusion_format.Issues(BUILD_ISSUES)
    yield from split_examples(split_dir, self.builder_config, issues)
    # A warning when data was skipped, so that it shows at default verbosity.
    log = logging.warning if issues.counts else logging.info
    log('carfusion build summary for %s:\n%s', split_dir, issues.summary())
