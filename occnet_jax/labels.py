"""The keypoint label codes and car ids of the dataset record (docs/design.md).

Every producer (the TFDS builders, the CarFusion reader and writer, the
renderer's visibility test) and every consumer (input pipeline, metrics,
reports) reads the `visibility` and `occlusion_kind` features through these
two enums. The CarFusion builder writes `car_id` by `carfusion_car_id`, and
the metrics read the physical car behind it by `physical_car`.
"""

import enum


class Visibility(enum.IntEnum):
  """`visibility` codes: only VISIBLE keypoints supervise training."""
  UNLABELLED = 0
  VISIBLE = 1
  OCCLUDED = 2


class OcclusionKind(enum.IntEnum):
  """`occlusion_kind` codes: why a keypoint is hidden."""
  VISIBLE = 0
  SELF = 1
  OTHER_VEHICLE = 2
  OTHER_OBJECT = 3
  TRUNCATION = 4
  UNKNOWN = 5


# A CarFusion record is one car at one frame: its `car_id` is
# '<sequence>/<frame>/<instance>', and the instance id names the same car in
# every frame of its sequence. Car-render's `car_id` is the model's id (one
# record per model), itself one physical car.
_CARFUSION_FIELDS = 3


def carfusion_car_id(sequence: str, frame: str | int, instance: int) -> str:
  """The `car_id` of CarFusion's record of one car at one frame."""
  return f'{sequence}/{frame}/{instance}'


def physical_car(car_id) -> str:
  """The physical car a record shows, whatever frame it was seen in.

  CarFusion's '<sequence>/<frame>/<instance>' -> '<sequence>/<instance>'
  (a parked car seen in 12 frames is one car, not 12); any other id (a
  Car-render model) is its own car.
  """
  car_id = car_id.decode() if isinstance(car_id, bytes) else str(car_id)
  fields = car_id.split('/')
  if len(fields) == _CARFUSION_FIELDS:
    sequence, _, instance = fields
    return f'{sequence}/{instance}'
  return car_id
