"""Class activation maps -> boxes: on a planted map, and on a CAM model trained to spot a bright square."""

import numpy as np

from simsearch.baselines.classifier import ImageClassifier
from simsearch.train.classifier import TrainConfig


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
