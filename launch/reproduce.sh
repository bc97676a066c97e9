#!/usr/bin/env bash
# Every run behind RESULTS.md, then the report that turns their workdirs
# into its tables and figures. About two hours on two CPU cores.
#
#   make install && bash launch/reproduce.sh [WORKDIRS]   (default: workdirs)
#
# Each step is resumable: rerunning the script skips finished runs
# (launch.train resumes from the last checkpoint and evaluates once) and
# datasets already built; the studies and the benchmark are rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
W=${1:-workdirs}
CONFIGS=occnet_jax/configs
MANUAL=$W/tensorflow_datasets/downloads/manual/carfusion

train() {  # train <name> <config> [overrides...]
  local name=$1 config=$2
  shift 2
  echo "=== $name ($(date -u +%H:%M:%S))"
  $PYTHON -m launch.train --config="$CONFIGS/$config" --workdir="$W/$name" "$@"
}

# The demo (`make demo`) on Car-render `small`, and its ablations.
train demo default.py
# The same with another seed: how much of a difference is noise.
train demo_seed_1 default.py --config.seed=1
train no_trifocal default.py --config.loss.trifocal=0
train no_encoder default.py --config.model.use_encoder=False
train no_keypoint_type default.py --config.model.use_keypoint_type=False
# The visible-vs-occluded trade-off of the decoder's visible term.
train visible_weight_2 default.py --config.loss.visible=2
train visible_weight_4 default.py --config.loss.visible=4

# Synthetic intersections in the CarFusion layout, read by the carfusion
# builder on first use as it reads real CarFusion: no calibration (every
# camera is a PnP virtual pose against the ShapeNet mean car), labels with
# simulated annotator noise (occnet_jax/annotator.py; exact positions in
# gt_true/ for evaluation), boxes of the visible pixels in bb/ (the run
# reads the visible-keypoint hull instead: carfusion/visible_hull).
if [[ ! -d $MANUAL/test ]]; then
  $PYTHON -m data_prep.make_synthetic_carfusion --output="$MANUAL" \
    --train_sequences=8 --test_sequences=2 --cameras=8 --frames=12 \
    --cars=12 --width=1280 --height=720 --seed=0 --nocalibration \
    --label_sigma_visible=0.015 --label_sigma_occluded=0.05 \
    --label_mirror_swap_rate=0.05
fi
# The 3D-KGNN's shape basis for CarFusion, fitted on other cars: the
# Car-render training cars (built by the demo above).
BASIS=$W/car_render_small_train_basis.npz
$PYTHON -m data_prep.fit_shape_basis --dataset=car_render/small \
  --split=train --data_dir="$W/tensorflow_datasets" --output="$BASIS"
train carfusion_synthetic carfusion_synthetic.py \
  --config.shape_basis.path="$BASIS"
# What a box rule tells about hidden keypoints (docs/design.md, "Boxes").
mkdir -p "$W/box_oracle"
# The run's boxes (the visible-keypoint hull), and the generator's
# visible-pixel boxes of bb/, which the default config builds.
if [[ ! -d $W/tensorflow_datasets/carfusion/default ]]; then
  $PYTHON -m tensorflow_datasets.scripts.cli.main build data_prep/carfusion \
    --config=default --manual_dir="$MANUAL" \
    --data_dir="$W/tensorflow_datasets" --file_format=array_record
fi
for boxes in visible_hull default; do
  $PYTHON -m data_prep.box_oracle --data_dir="$W/tensorflow_datasets" \
    --dataset=carfusion/$boxes \
    --output="$W/box_oracle/carfusion_synthetic_$boxes.json"
done

# The full Car-render set (472 cars x 24 views).
train car_render_full_cpu car_render_full_cpu.py

# Fig. 4 left: labelled occluded points vs their trifocal transfer, with
# the simulated annotators of occnet_jax/label_study.py.
$PYTHON -m launch.trifocal_labels --dataset=car_render/full --split=test \
  --data_dir="$W/tensorflow_datasets" \
  --output="$W/trifocal_labels/car_render_full"
$PYTHON -m launch.trifocal_labels --dataset=carfusion/visible_hull --split=test \
  --data_dir="$W/tensorflow_datasets" \
  --output="$W/trifocal_labels/carfusion_synthetic"

# Speed: alone on the machine, or its numbers mean little.
$PYTHON -m launch.benchmark --sizes=default,paper \
  --output="$W/benchmark/bench.json"

# RESULTS.md's tables, docs/results/'s figures.
$PYTHON -m launch.report --workdirs="$W"
