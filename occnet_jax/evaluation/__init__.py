"""Evaluation on anyone's terms: COCO keypoint files, simulated detectors."""
