"""The `carfusion` TFDS dataset; importing it registers the builder."""

from data_prep.carfusion.carfusion_dataset_builder import Builder
from data_prep.carfusion.carfusion_dataset_builder import CarfusionConfig
