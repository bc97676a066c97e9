"""Evaluation: predictions on a split, their scores and where they are kept.

`evaluate` predicts and scores a split, `scores` holds the metrics (PCK,
occlusion ROC), `metric_keys` their names, `bootstrap` their intervals,
`shape_fit` and `multiview` the baselines and the multi-view study,
`box_jitter` the perturbed boxes, `plots` the figures, and
`checkpoint_watcher` the job that evaluates each new checkpoint. Anyone's
predictions are scored on the same terms: `coco_results` reads COCO keypoint
results files, `score_coco` scores them against a built split, and
`simulated_detector` feeds the graph networks a simulated detector's
keypoints.
"""
