"""Overlay pictures a person can look at: the image with its anomaly map in colour, boxes and the verdict."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from simsearch.decide.threshold import Threshold
from simsearch.score.maps import anomaly_map, resize_map
from simsearch.score.results import ScoreResult


def _colour(values: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps
    return (colormaps["jet"](np.clip(values, 0.0, 1.0))[:, :, :3] * 255).astype(np.uint8)


def overlay_image(pixels: np.ndarray, result: ScoreResult, threshold: Threshold | None = None,
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
        if threshold is not None:  # the map threshold (for boxes) at mid-scale
            scaled = threshold.normalise(full, value=threshold.pixel)
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


def overlay_png(pixels: np.ndarray, result: ScoreResult, threshold: Threshold | None = None) -> bytes:
    """overlay_image as PNG bytes."""
    buffer = io.BytesIO()
    overlay_image(pixels, result, threshold).save(buffer, format="PNG")
    return buffer.getvalue()


# what of an input's folder and name an overlay's file name keeps: letters and digits of any script, `_`, `.` and
# `-` (never a control character or a path separator), at most _STEM_CHARS of them (file systems allow 255 bytes)
_UNSAFE = re.compile(r"[^\w.-]+")
_STEM_CHARS = 100


def _safe_stem(text: str) -> str:
    stem = _UNSAFE.sub("_", text).strip("._") or "image"
    if len(stem) > _STEM_CHARS:  # its start and end, and a hash of the whole so that long names stay apart
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        stem = f"{stem[:40]}_{digest}_{stem[-(_STEM_CHARS - 50):]}"
    return stem


def overlay_name(path: str | None, number: int, taken: set[str] | None = None) -> str:
    """A file name for an image's overlay that keeps its folder (MVTec's 000.png repeats per type), made safe
    (no control characters or separators, shortened); when that name is in `taken` (two good/000.png from
    different folders), the image's number is added. The name is added to `taken`."""
    if path is None:
        name = f"image_{number:05d}_overlay.png"
    else:
        parts = Path(path).parts
        stem = _safe_stem("_".join(parts[-2:-1] + (Path(parts[-1]).stem,)))
        name = f"{stem}_overlay.png"
        extra = 0
        while taken is not None and name in taken:
            extra += 1
            name = f"{stem}_{number:05d}_overlay.png" if extra == 1 else f"{stem}_{number:05d}_{extra}_overlay.png"
    if taken is not None:
        taken.add(name)
    return name


def write_overlays(results: Iterable[ScoreResult], folder: str | Path,
                   threshold: Threshold | None = None) -> Iterator[ScoreResult]:
    """Pass `results` through, writing each one's overlay PNG into `folder` (created now, before the first
    result) as it goes by: the file named by `overlay_name` (distinct for images of the same name), the map
    coloured by `threshold`."""
    from simsearch.data.images import read_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def written() -> Iterator[ScoreResult]:
        taken: set[str] = set()
        for number, result in enumerate(results):
            overlay_image(read_image(result.path), result, threshold).save(
                folder / overlay_name(result.path, number, taken))
            yield result

    return written()
