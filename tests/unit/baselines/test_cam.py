"""Class activation maps -> boxes: on a planted map, and on a CAM model trained to spot a bright square."""

import numpy as np

from simsearch.baselines.cam import map_to_box, upsample_map
from simsearch.baselines.classifier import ImageClassifier
from simsearch.train.classifier import TrainConfig


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


def _image(rng, defect, size=64):
    image = np.full((size, size), 90.0) + rng.normal(0, 8, (size, size))
    square = None
    if defect:
        y, x = rng.integers(4, size - 18, 2)
        image[y:y + 14, x:x + 14] = 255
        square = (x + 7, y + 7)
    return np.repeat(image.clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2), square


def test_cam_box_lands_on_a_planted_bright_square():
    rng = np.random.default_rng(0)
    train = [_image(rng, i % 2 == 1) for i in range(24)]
    config = TrainConfig(epochs=4, learning_rate=1e-3, target_accuracy=1.01, augment=False)
    classifier = ImageClassifier("cam", 64, pretrained=False, train=config, batch_size=8)
    classifier.fit_images([image for image, _ in train], [i % 2 for i in range(24)])
    test = [_image(rng, True) for _ in range(6)]
    hits = 0
    for (_, (cx, cy)), result in zip(test, classifier.score([image for image, _ in test])):
        assert result.is_anomaly and result.image_size == (64, 64)
        box = result.boxes[0]
        hits += box.x0 <= cx < box.x1 and box.y0 <= cy < box.y1
    assert hits == len(test)
