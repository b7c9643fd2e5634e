"""Region of interest: crop an image to the circular part it shows (Hough circle), as for round parts."""

from __future__ import annotations

import numpy as np

from simsearch.errors import InputError, UnknownComponentError

ROI_CHOICES = ("none", "hough")


class RoiError(InputError):
    """No region of interest could be found in an image."""


def find_circle(image: np.ndarray, min_radius: float = 0.15, max_radius: float = 0.5,
                perfectness: float = 0.6) -> tuple[float, float, float]:
    """The most prominent circle (x, y, radius) in pixels; radii are fractions of the shorter side.

    Uses OpenCV's HOUGH_GRADIENT_ALT, whose `perfectness` (0..1) rejects shapes that are only roughly
    round, so an image without a round part raises RoiError instead of yielding a random crop.
    """
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_RGB2GRAY)
    scale = min(1.0, 512.0 / max(gray.shape))  # Hough voting is slow on large images; a circle survives
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    small = cv2.GaussianBlur(small, (5, 5), 1.5)
    side = min(small.shape)
    circles = cv2.HoughCircles(small, cv2.HOUGH_GRADIENT_ALT, dp=1.5, minDist=side / 4, param1=100,
                               param2=perfectness, minRadius=max(4, int(side * min_radius)),
                               maxRadius=int(side * max_radius))
    if circles is None or len(circles[0]) == 0:
        raise RoiError("no circular part found for the Hough ROI crop", hint="check the image or train without {param}",
                       parameter="roi")
    x, y, radius = max(circles[0], key=lambda c: c[2])  # the part itself, not a hole or a mark on it
    return float(x / scale), float(y / scale), float(radius / scale)


def crop_to_circle(image: np.ndarray, margin: float = 0.05, **options) -> np.ndarray:
    """The square around the image's most prominent circle, widened by `margin` x radius, inside the image."""
    x, y, radius = find_circle(image, **options)
    half = radius * (1 + margin)
    height, width = image.shape[:2]
    x0, y0 = max(0, int(round(x - half))), max(0, int(round(y - half)))
    x1, y1 = min(width, int(round(x + half))), min(height, int(round(y + half)))
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def apply_roi(image: np.ndarray, roi: str | None) -> np.ndarray:
    """The image cropped by the named ROI method ('hough'), or unchanged for None/'none'."""
    if roi in (None, "none"):
        return image
    if roi == "hough":
        return crop_to_circle(image)
    raise UnknownComponentError(f"unknown ROI method {roi!r}; choose one of {', '.join(ROI_CHOICES)}")
