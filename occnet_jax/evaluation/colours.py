"""The one meaning of each colour, in every figure and in `predict`'s overlay.

One colour per method, grey for ground-truth labels, black for the paper
(and chance), gold for a detector's boxes, and green and red only for
visible and occluded.
"""

COLOURS = {'heatmap': 'tab:orange', 'kgnn2d': 'tab:blue',
           'kgnn3d': 'tab:purple', 'shape_fit_confidence': 'tab:brown',
           'shape_fit_encoder': 'tab:cyan',
           'oracle_fit': 'tab:pink', 'labels': 'tab:gray', 'paper': 'black',
           'visible': 'tab:green', 'occluded': 'tab:red',
           'detector_box': 'gold'}
