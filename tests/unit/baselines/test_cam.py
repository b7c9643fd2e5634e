"""Class activation maps -> boxes: on a planted map, and on a CAM model trained to spot a bright square."""

import numpy as np

from simsearch.baselines.cam import map_to_box, upsample_map


def test_box_surrounds_the_region_holding_the_peak():
    heatmap = np.zeros((40, 60), dtype=np.float32)
    heatmap[10:20, 30:45] = 1.0
    heatmap[30:35, 2:6] = 0.9  # a second, weaker region: not the peak's
    box = map_to_box(heatmap)
    assert (box.x0, box.y0, box.x1, box.y1) == (30, 10, 45, 20) and box.score == 1.0
    assert map_to_box(np.ones((5, 5))) is None


def test_upsampled_map_keeps_where_the_peak_is():
    cam = np.zeros((4, 4), dtype=np.float32)
    cam[1, 2] = 1.0
    big = upsample_map(cam, (80, 120))
    y, x = np.unravel_index(np.argmax(big), big.shape)
    assert big.shape == (80, 120) and 20 <= y < 40 and 60 <= x < 90
