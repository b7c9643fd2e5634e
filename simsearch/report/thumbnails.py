"""Image files and PNG bytes -> data URIs small enough to embed many of them in one HTML page."""

from __future__ import annotations

import base64
import io
from pathlib import Path

THUMB_SIDE = 200


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """bytes -> 'data:<mime>;base64,...'."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail_uri(path: str | Path, side: int = THUMB_SIDE) -> str | None:
    """A JPEG thumbnail of an image file (longest side exactly `side` px) as a data URI, or None when the file
    cannot be read (moved, deleted, not an image)."""
    from PIL import Image

    from simsearch.data.images import ImageError, read_image

    try:
        pixels = read_image(path)
    except (ImageError, OSError, ValueError):
        return None
    image = Image.fromarray(pixels).convert("RGB")
    scale = side / max(image.size)  # small images are enlarged too, so that every thumbnail is as legible
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return data_uri(buffer.getvalue(), "image/jpeg")


def file_uri(path: str | Path) -> str | None:
    """A PNG/JPEG file as a data URI as it is (already small: the report's overlays), or None if absent."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    return data_uri(data, mime)
