"""The `car_render` TFDS dataset; importing it registers the builder."""

from data_prep.car_render.car_render_dataset_builder import Builder
