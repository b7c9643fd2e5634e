"""Uploads that cost memory or carry odd text: a large 16-bit image is reduced on decode and answered in
its own frame, an animated GIF is scored on its first frame with a note, defect types are limited."""

from __future__ import annotations

from simsearch.score.results import Box


def test_box_scaled_back_to_the_original_frame():
    box = Box(10, 20, 30, 40, 0.5).scaled(4.0, 5.0, 150, 120)
    assert (box.x0, box.y0, box.x1, box.y1, box.score) == (50, 80, 120, 150, 0.5)  # clipped to the image
