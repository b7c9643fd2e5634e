"""Patch distances -> pictures: the anomaly map (upsampled, Gaussian-smoothed, as PatchCore does), the
regions above the threshold as boxes in original pixels, and an overlay PNG a person can look at."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from simsearch.scoring import Box, ScoreResult

MAP_SIZE = 224  # working resolution of anomaly maps (PatchCore's input size); boxes are scaled from it
SIGMA = 4.0  # Gaussian smoothing at MAP_SIZE, PatchCore's value
MIN_REGION_FRACTION = 1e-4  # regions smaller than this share of the map are noise, not defects


def anomaly_map(patch_map: np.ndarray, size: int = MAP_SIZE, sigma: float = SIGMA) -> np.ndarray:
    """(h, w) patch distances -> (size, size) map: bilinear upsampling, then Gaussian smoothing."""
    upsampled = resize_map(patch_map, size, size)
    return ndimage.gaussian_filter(upsampled, sigma=sigma, mode="nearest") if sigma > 0 else upsampled


def resize_map(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a 2-D float map to (height, width)."""
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def boxes_from_map(amap: np.ndarray, threshold: float, image_size: tuple[int, int] | None = None,
                   min_fraction: float = MIN_REGION_FRACTION) -> list[Box]:
    """Connected regions of amap >= threshold, as boxes in original pixels (image_size = (H, W)),
    each scored by its peak value, highest first."""
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


def add_map_and_boxes(result: ScoreResult, threshold: dict | None) -> None:
    """Fill result.anomaly_map from its patch map and, for an image over the threshold, result.boxes."""
    if result.patch_map is None:
        return
    result.anomaly_map = anomaly_map(result.patch_map)
    if threshold and result.is_anomaly:  # boxes say where to look on a reject; a pass has none
        pixel_threshold = float(threshold.get("pixel_value") or threshold["value"])
        result.boxes = boxes_from_map(result.anomaly_map, pixel_threshold, result.image_size)


def _colour(values: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps
    return (colormaps["jet"](np.clip(values, 0.0, 1.0))[:, :, :3] * 255).astype(np.uint8)


def overlay_image(pixels: np.ndarray, result: ScoreResult, threshold: dict | None = None,
                  alpha: float = 0.45) -> Image.Image:
    """The image with its anomaly map in colour (blue = normal, red = anomalous; the threshold sits at the
    middle of the scale when there is one), boxes in white, and the score written on top."""
    height, width = pixels.shape[:2]
    canvas = Image.fromarray(pixels).convert("RGB")
    amap = getattr(result, "anomaly_map", None)
    if amap is None and result.patch_map is not None:
        amap = anomaly_map(result.patch_map)
    if amap is not None:
        full = resize_map(amap, height, width)
        if threshold:
            from simsearch.threshold import normalise_scores
            scaled = normalise_scores(full, {**threshold, "value": threshold.get("pixel_value") or threshold["value"]})
        else:
            low, high = float(full.min()), float(full.max())
            scaled = (full - low) / max(high - low, 1e-12)
        heat = Image.fromarray(_colour(scaled.astype(np.float32)))
        canvas = Image.blend(canvas, heat, alpha)
    draw = ImageDraw.Draw(canvas)
    line = max(2, round(max(height, width) / 300))
    for box in result.boxes:
        draw.rectangle([box.x0, box.y0, box.x1 - 1, box.y1 - 1], outline=(255, 255, 255), width=line)
    verdict = "" if result.is_anomaly is None else ("REJECT  " if result.is_anomaly else "pass  ")
    normalised = "" if result.normalised_score is None else f"  normalised {result.normalised_score:.2f}"
    text = f"{verdict}score {result.score:.3f}{normalised}"
    font = ImageFont.load_default(size=max(12, round(max(height, width) / 40)))
    left, top, right, bottom = draw.textbbox((6, 4), text, font=font)
    draw.rectangle([0, 0, right + 6, bottom + 4], fill=(0, 0, 0))
    draw.text((6, 4), text, font=font, fill=(255, 80, 80) if result.is_anomaly else (255, 255, 255))
    for box in result.boxes:  # the label sits under the box's top edge, or below the banner when it would hide
        draw.text((box.x0 + line + 2, max(box.y0 + line, bottom + 6)), f"{box.score:.2f}", font=font,
                  fill=(255, 255, 255))
    return canvas


def overlay_png(pixels: np.ndarray, result: ScoreResult, threshold: dict | None = None) -> bytes:
    """overlay_image as PNG bytes."""
    buffer = io.BytesIO()
    overlay_image(pixels, result, threshold).save(buffer, format="PNG")
    return buffer.getvalue()


def overlay_name(path: str | None, number: int) -> str:
    """A file name for an image's overlay that keeps its folder (MVTec's 000.png repeats per type)."""
    if path is None:
        return f"image_{number:05d}_overlay.png"
    parts = Path(path).parts
    stem = "_".join(parts[-2:-1] + (Path(parts[-1]).stem,))
    return f"{stem}_overlay.png"
