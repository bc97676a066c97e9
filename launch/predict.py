r"""Runs a trained model on images with car boxes from any detector.

One image:

    python -m launch.predict --workdir=workdirs/demo --image=street.jpg \
        --boxes=boxes.json [--keypoints=keypoints.json] [--step=N] \
        [--score_threshold=0.5] [--image_id=ID] [--output=OUT]

writes OUT.json (per car: 2D keypoints with visibility score, 3D keypoints,
camera), OUT.coco.json (COCO keypoint results, integer image_id),
OUT.coco_images.json (that image_id's file name and size) and OUT.png
(overlay). OUT defaults to <workdir>/predict/<image name>.

A folder, glob or video, with COCO detections (or COCO keypoint results)
keyed by image id, or by frame index for a video:

    python -m launch.predict --workdir=workdirs/demo --source=frames/ \
        --boxes=detections.json [--overlays] [--output=DIR]
    python -m launch.predict --workdir=workdirs/demo --source=clip.mp4 \
        --keypoints=pifpaf.json --keypoint_layout=apollocar3d_24 \
        --video_output=DIR/annotated.mp4

writes DIR/results.coco.json, DIR/images.coco.json, DIR/predictions.json
(DIR defaults to <workdir>/predict/<source name>); frames that cannot be
read are skipped, counted and named. See occnet_jax/predict.py for the
formats and occnet_jax/categories/coco_layouts.py for the layouts.
"""

import os

from absl import app
from absl import flags

from occnet_jax import cli
from occnet_jax import predict
from occnet_jax.categories import coco_layouts

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training workdir.')
_IMAGE = flags.DEFINE_string(
    'image', None, 'The full image (any format Pillow reads; it must decode '
    'completely).')
_SOURCE = flags.DEFINE_string(
    'source', None, 'Instead of --image: a folder of images, a glob pattern '
    f'(quoted) or a video file ({", ".join(predict.VIDEO_SUFFIXES)}).')
_BOXES = flags.DEFINE_string(
    'boxes', None, f'The car boxes: {predict.BOXES_FORMATS}. With --source: '
    'COCO detections with "image_id" (a video frame\'s index) and "bbox". '
    'Not needed with COCO keypoint results (their boxes are used).')
_KEYPOINTS = flags.DEFINE_string(
    'keypoints', None, 'Optional external keypoints (keypoints-in mode: they '
    f'replace the heatmap head): {predict.KEYPOINTS_FORMAT}.')
_KEYPOINT_LAYOUT = flags.DEFINE_enum(
    'keypoint_layout', predict.DEFAULT_LAYOUT, list(coco_layouts.LAYOUTS),
    'The keypoints of the COCO keypoint results (they are mapped onto the '
    "model's by name; missing ones get confidence 0).")
_STEP = flags.DEFINE_integer('step', None,
                             'Checkpoint step (default: the latest).')
_SCORE_THRESHOLD = flags.DEFINE_float(
    'score_threshold', 0.0, 'Leave out cars whose occlusion-aware confidence '
    '(the mean visibility score of their keypoints, the COCO "score") is '
    'below this.', lower_bound=0.0, upper_bound=1.0)
_IMAGE_ID = flags.DEFINE_integer(
    'image_id', None, 'With --image: COCO image_id (default: the file '
    'name\'s number, else a hash of the file name).')
_OUTPUT = flags.DEFINE_string(
    'output', None, 'Output path prefix (--image) or folder (--source).')
_OVERLAYS = flags.DEFINE_bool('overlays', False,
                              'With --source: an overlay PNG per frame.')
_VIDEO_OUTPUT = flags.DEFINE_string(
    'video_output', None, 'With --source: the overlays as a video (.mp4: '
    'mp4v, else Motion JPEG).')
_VIDEO_FPS = flags.DEFINE_float('video_fps', 10.0,
                                'Frame rate of --video_output.')
flags.mark_flags_as_required(['workdir'])
flags.mark_flags_as_mutual_exclusive(['image', 'source'], required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _SOURCE.value:
    name = os.path.basename(os.path.normpath(_SOURCE.value.split('*')[0]))
    output = _OUTPUT.value or os.path.join(
        _WORKDIR.value, 'predict', os.path.splitext(name)[0] or 'frames')
    summary = predict.predict_frames(
        _WORKDIR.value, _SOURCE.value, output, boxes_path=_BOXES.value,
        keypoints_path=_KEYPOINTS.value,
        keypoint_layout=_KEYPOINT_LAYOUT.value, step=_STEP.value,
        score_threshold=_SCORE_THRESHOLD.value, overlays=_OVERLAYS.value,
        video_output=_VIDEO_OUTPUT.value, video_fps=_VIDEO_FPS.value)
    bad = summary['bad_frames']
    print(f'{summary["num_cars"]} car(s) in {summary["num_frames"]} '
          f'frame(s); {len(bad)} skipped'
          + (f' ({", ".join(item["name"] for item in bad)})' if bad else '')
          + f': {", ".join(summary["paths"])}')
    return
  output = _OUTPUT.value or os.path.join(
      _WORKDIR.value, 'predict',
      os.path.splitext(os.path.basename(_IMAGE.value))[0])
  cars = predict.predict_files(
      _WORKDIR.value, _IMAGE.value, _BOXES.value, output, _KEYPOINTS.value,
      step=_STEP.value, score_threshold=_SCORE_THRESHOLD.value,
      image_id=_IMAGE_ID.value, keypoint_layout=_KEYPOINT_LAYOUT.value)
  print(f'{len(cars)} car(s): {", ".join(predict.output_paths(output))}')


if __name__ == '__main__':
  cli.run(main)
