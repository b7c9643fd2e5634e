"""Patch distances -> the anomaly map (upsampled, Gaussian-smoothed, as PatchCore does) and the regions above
the threshold as boxes in original pixels. Maths only: drawing overlays is `simsearch.report.overlay`."""

from __future__ import annotations

import numpy as np

from simsearch.score.results import Box, ScoreResult

MAP_SIZE = 224  # working resolution of anomaly maps (PatchCore's input size); boxes are scaled from it
SIGMA = 4.0  # Gaussian smoothing at MAP_SIZE, PatchCore's value
MIN_REGION_FRACTION = 1e-4  # regions smaller than this share of the map are noise, not defects


def anomaly_map(patch_map: np.ndarray, size: int = MAP_SIZE, sigma: float = SIGMA) -> np.ndarray:
    """(h, w) patch distances -> (size, size) map: bilinear upsampling, then Gaussian smoothing."""
    from scipy import ndimage  # on first use: scoring a pass needs no map, and start-up stays short

    upsampled = resize_map(patch_map, size, size)
    return ndimage.gaussian_filter(upsampled, sigma=sigma, mode="nearest") if sigma > 0 else upsampled


def resize_map(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a 2-D float map to (height, width), with half-pixel centres (torch's
    align_corners=False); OpenCV rather than torch, so that scoring with a compiled embedder never loads torch."""
    import cv2  # on first use, as scipy above

    return cv2.resize(np.ascontiguousarray(values, dtype=np.float32), (int(width), int(height)),
                      interpolation=cv2.INTER_LINEAR)


def boxes_from_map(amap: np.ndarray, threshold: float, image_size: tuple[int, int] | None = None,
                   min_fraction: float = MIN_REGION_FRACTION) -> list[Box]:
    """Connected regions of amap >= threshold, as boxes in original pixels (image_size = (H, W)),
    each scored by its peak value, highest first."""
    from scipy import ndimage

    above = amap >= threshold
    labels, count = ndimage.label(above)
    if count == 0:
        return []
    height, width = image_size if image_size is not None else amap.shape
    scale_y, scale_x = height / amap.shape[0], width / amap.shape[1]
    sizes = ndimage.sum_labels(above, labels, index=np.arange(1, count + 1))
    peaks = ndimage.maximum(amap, labels, index=np.arange(1, count + 1))
    boxes = []
    for number, region in enumerate(ndimage.find_objects(labels)):
        if region is None or sizes[number] < min_fraction * amap.size:
            continue
        rows, cols = region
        boxes.append(Box(x0=int(np.floor(cols.start * scale_x)), y0=int(np.floor(rows.start * scale_y)),
                         x1=min(width, int(np.ceil(cols.stop * scale_x))),
                         y1=min(height, int(np.ceil(rows.stop * scale_y))), score=float(peaks[number])))
    return sorted(boxes, key=lambda b: -b.score)


PEAK_REGION_LEVEL = 0.5  # the peak region: where the map is above half-way from its median to its peak


def peak_region_box(amap: np.ndarray, image_size: tuple[int, int] | None = None) -> Box:
    """The box around the map's peak: the connected region holding the maximum where the map is above
    half-way between its median and its peak (what a reject names when no region passes the box threshold)."""
    peak, median = float(amap.max()), float(np.median(amap))
    level = median + PEAK_REGION_LEVEL * (peak - median) if peak > median else peak
    return boxes_from_map(amap, level, image_size, min_fraction=0.0)[0]  # highest peak first: the maximum's


def add_boxes(result: ScoreResult, pixel_threshold: float | None = None, reject: bool = False) -> None:
    """For a rejected image with a patch map, fill result.boxes: the regions of its anomaly map at or above
    pixel_threshold (a Threshold's `pixel`; None: no threshold, no boxes). Other images' maps stay uncomputed
    until something reads them (ScoreResult.anomaly_map)."""
    if result.patch_map is None:
        return
    if pixel_threshold is not None and reject:  # boxes say where to look on a reject; a pass has none
        result.boxes = boxes_from_map(result.anomaly_map, float(pixel_threshold), result.image_size)
        if not result.boxes:  # the box threshold can sit above a borderline reject's map: still name where
            result.boxes = [peak_region_box(result.anomaly_map, result.image_size)]
