import numpy as np

from simsearch.report.overlay import overlay_png
from simsearch.score.maps import anomaly_map, boxes_from_map
from simsearch.score.results import Box, ScoreResult


def test_boxes_follow_known_regions_in_original_pixels():
    amap = np.zeros((100, 100), np.float32)
    amap[10:20, 30:50] = 5.0
    amap[60:90, 70:80] = 3.0
    amap[0, 0] = 9.0  # one pixel: noise below the minimum region size... but large enough at 1e-4? 1 of 1e4
    boxes = boxes_from_map(amap, 1.0, image_size=(200, 400), min_fraction=2e-4)
    assert [(b.x0, b.y0, b.x1, b.y1) for b in boxes] == [(120, 20, 200, 40), (280, 120, 320, 180)]
    assert boxes[0].score == 5.0


def test_anomaly_map_is_smooth_and_peaks_at_the_hot_patch():
    grid = np.zeros((8, 8), np.float32)
    grid[2, 5] = 1.0
    amap = anomaly_map(grid, size=64, sigma=2)
    y, x = np.unravel_index(np.argmax(amap), amap.shape)
    assert amap.shape == (64, 64) and abs(y - 20) <= 4 and abs(x - 44) <= 4
    assert amap.max() < 1.0  # smoothing spreads the peak


def test_overlay_png_is_an_image_with_the_box_drawn():
    import io

    from PIL import Image
    pixels = np.zeros((50, 80, 3), np.uint8)
    grid = np.zeros((4, 4), np.float32)
    result = ScoreResult(path="x.png", score=2.0, nearest=[], patch_map=grid, image_size=(50, 80),
                         boxes=[Box(10, 10, 30, 40, 2.0)], is_anomaly=True, normalised_score=0.9)
    image = Image.open(io.BytesIO(overlay_png(pixels, result)))
    assert image.size == (80, 50)
    assert np.asarray(image)[25, 10].tolist() == [255, 255, 255]  # the box's left edge


def test_a_reject_below_the_box_threshold_still_names_its_peak_region():
    from simsearch.score.maps import add_boxes

    grid = np.zeros((8, 8), np.float32)
    grid[5, 1] = 1.0
    result = ScoreResult(path="x.png", score=1.0, nearest=[], patch_map=grid, image_size=(800, 800),
                         map_from_patches=True)
    add_boxes(result, pixel_threshold=100.0, reject=True)  # no pixel reaches the box threshold
    assert len(result.boxes) == 1
    box = result.boxes[0]
    assert box.x0 < 150 < box.x1 and box.y0 < 550 < box.y1  # around patch (5, 1) of an 8x8 grid on 800 px
    passed = ScoreResult(path="y.png", score=1.0, nearest=[], patch_map=grid, image_size=(800, 800),
                         map_from_patches=True)
    add_boxes(passed, pixel_threshold=100.0, reject=False)
    assert passed.boxes == []  # a pass names nothing
