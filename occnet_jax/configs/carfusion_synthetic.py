r"""The `default` model on synthetic intersections read as CarFusion.

`python -m data_prep.make_synthetic_carfusion` writes multi-camera traffic
intersections (self, other-vehicle, other-object and truncation occlusions)
in the raw CarFusion layout, and the `carfusion` builder reads them exactly
as it reads the real data. The reproduction writes them as real CarFusion
is: without calibration and with simulated annotator noise on the labels
(exact positions beside them, for evaluation only). As in the paper's
preprocessing, the builder poses each view against its car's own 3D
keypoints, triangulated from the car's views with a focal length per camera
(`carfusion/visible_hull_multiview`; data_prep/carfusion/README.md has the
label study against PnP on the mean car). Its boxes are the hull of each
car's visible keypoints, the conservative rule: the generator's
visible-pixel boxes in bb/ tell more about hidden keypoints (RESULTS.md,
"Boxes a detector could give"). Its 3D-KGNN shape basis is
fitted on other cars, the Car-render training cars; without
`shape_basis.path` the 3D branch uses the mean car without components (the
split has no 3D shapes). This config trains the demo's small networks on
CPU; `carfusion.py` is the GPU-sized run on the real data.
`reproduction/runs.py` has the whole sequence:

    python -m data_prep.make_synthetic_carfusion \
        --output=workdirs/tensorflow_datasets/downloads/manual/carfusion \
        --nocalibration --label_sigma_visible=0.015 \
        --label_sigma_occluded=0.05 --label_mirror_swap_rate=0.05
    python -m data_prep.fit_shape_basis --dataset=car_render/small \
        --data_dir=workdirs/tensorflow_datasets \
        --output=workdirs/car_render_small_train_basis.npz
    python -m launch.train --config=occnet_jax/configs/carfusion_synthetic.py \
        --workdir=workdirs/carfusion_synthetic \
        --config.shape_basis.path=workdirs/car_render_small_train_basis.npz
"""
import ml_collections

from occnet_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the CPU configuration on synthetic CarFusion intersections."""
  config = default.get_config()
  config.data.name = 'carfusion'
  config.data.builder_config = 'visible_hull_multiview'
  # The builder's 64 px crops; cars seen by fewer cameras are padded.
  config.data.crop_size = 64
  # Validation holds out whole intersections (`make_synthetic_carfusion
  # --validation_sequences`): no car of it is seen in training.
  config.data.train_split = 'train'
  config.data.periodic_eval_split = 'validation'
  # Chosen on that validation split by the 2D-KGNN's PCK@0.1 on all
  # keypoints, the highest of 0.3, 1 and 3 (RESULTS.md, "Tuning on
  # validation"), with the ungated decoder and the mean car's cameras:
  # Car-render's weight of 3 trusted those noisy targets too much. The
  # hard-gated sweep on the cameras above (`reproduction/runs.py`,
  # `HARD_GATE_TRIFOCAL_SWEEP`) chooses it again.
  config.loss.trifocal = 0.3
  return config
