"""The Hough ROI crop finds a synthetic circle and refuses images without one."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from simsearch.data.roi import RoiError, apply_roi, crop_to_circle, find_circle


def _disc_image(cx=230, cy=140, radius=80, size=(400, 300), seed=0):
    image = Image.new("L", size, 40)
    ImageDraw.Draw(image).ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=190)
    noisy = np.asarray(image, dtype=np.float64) + np.random.default_rng(seed).normal(0, 4, (size[1], size[0]))
    return np.repeat(noisy.clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def test_finds_a_synthetic_circle():
    x, y, radius = find_circle(_disc_image())
    assert abs(x - 230) < 4 and abs(y - 140) < 4 and abs(radius - 80) < 5


def test_crop_is_the_square_around_the_circle():
    crop = crop_to_circle(_disc_image(), margin=0.1)
    assert abs(crop.shape[0] - 176) <= 8 and abs(crop.shape[1] - 176) <= 8
    assert crop[crop.shape[0] // 2, crop.shape[1] // 2, 0] > 150  # the disc is in the middle


@pytest.mark.parametrize("kind", ["flat", "noise", "square"])
def test_refuses_an_image_without_a_circle(kind):
    rng = np.random.default_rng(1)
    if kind == "flat":
        image = np.full((200, 200, 3), 90, np.uint8)
    elif kind == "noise":
        image = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    else:
        image = np.full((200, 200, 3), 30, np.uint8)
        image[40:160, 40:160] = 200
    with pytest.raises(RoiError, match="no circular part"):
        find_circle(image)


def test_apply_roi_names():
    image = _disc_image()
    assert apply_roi(image, None) is image and apply_roi(image, "none") is image
    with pytest.raises(ValueError, match="hough"):
        apply_roi(image, "box")
