"""Reading inspection images: any common format in, an RGB uint8 array out, with size caps."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from simsearch.errors import InputError

IMAGE_SUFFIXES = frozenset({".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff"})

# Decompression bombs: refuse anything above this many pixels before decoding it.
MAX_PIXELS = int(os.environ.get("SIMSEARCH_MAX_PIXELS", 100_000_000))
MAX_FILE_BYTES = int(os.environ.get("SIMSEARCH_MAX_FILE_BYTES", 200 * 1024 * 1024))

ImageLike = Union[str, Path, Image.Image, np.ndarray]


class ImageError(InputError):
    """An input that is not a readable image."""


class ImageTooLargeError(ImageError):
    """An image over the pixel or byte cap."""


def check_pixel_count(width: int, height: int, max_pixels: int = MAX_PIXELS) -> None:
    """Raise ImageTooLargeError when an image is larger than the pixel cap."""
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height / 1e6:.3g} megapixels, over the cap of "
            f"{max_pixels / 1e6:.3g}", hint="downscale it or set SIMSEARCH_MAX_PIXELS"
        )


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert a PIL image of any mode (1/L/P/I;16/I/F/RGBA/CMYK...) to an (H, W, 3) uint8 array."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float images: stretch the used range to 8 bits instead of clipping at 255.
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        gray = scaled.round().astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def _decode(source: str | Path | io.BytesIO, name: str, max_pixels: int) -> np.ndarray:
    """Open (header only), check the pixel count, then decode to RGB; errors are prefixed with name."""
    try:
        with Image.open(source) as image:
            check_pixel_count(*image.size, max_pixels=max_pixels)
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.load()
            return to_rgb_array(image)
    except ImageError as error:
        raise type(error)(f"{name}: {error.message}", hint=error.hint, parameter=error.parameter) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLargeError(f"{name}: {error}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a readable image (unknown format or corrupt)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{name}: not a readable image ({error})") from None


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file into an (H, W, 3) uint8 RGB array; ImageError when it cannot."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageTooLargeError(f"{path}: file is {size / 1e6:.0f} MB, over the cap of "
                                 f"{MAX_FILE_BYTES / 1e6:.0f} MB")
    return _decode(path, str(path), max_pixels)


def read_image_bytes(data: bytes, max_pixels: int = MAX_PIXELS, name: str = "upload") -> np.ndarray:
    """Decode an encoded image held in memory (e.g. an HTTP upload) like read_image does a file."""
    if not data:
        raise ImageError(f"{name}: empty file")
    return _decode(io.BytesIO(data), name, max_pixels)


def as_rgb_array(image: ImageLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Accept a path, a PIL image or a numpy array (HxW, HxWx1, HxWx3, HxWx4) and return RGB uint8."""
    if isinstance(image, (str, Path)):
        return read_image(image, max_pixels=max_pixels)
    if isinstance(image, Image.Image):
        check_pixel_count(*image.size, max_pixels=max_pixels)
        return to_rgb_array(image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"expected an HxW or HxWx3 image array, got shape {array.shape}")
    check_pixel_count(array.shape[1], array.shape[0], max_pixels=max_pixels)
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        low, high = float(array.min()), float(array.max())
        if array.max() <= 1.0 and low >= 0.0:
            array = array * 255.0
        elif high > 255.0 or low < 0.0:
            array = (array - low) / max(high - low, 1e-12) * 255.0
        array = array.round().clip(0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def is_image_file(path: Path) -> bool:
    """True when the file name has an image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_image_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (recursively) into a sorted list of image files.

    Files given by name are kept whatever their suffix (reading decides); inside folders only image
    suffixes count. A missing path raises FileNotFoundError.
    """
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p)))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def iter_readable_images(
    images: Sequence[ImageLike],
    on_skip: Callable[[str, str], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (position, RGB array) for each readable input (path, PIL image or array); unreadable ones go
    to on_skip(name, reason). A single unreadable input is an error, and so is a list where none is readable."""
    readable = 0
    for position, image in enumerate(images):
        try:
            array = as_rgb_array(image)
        except ImageError as error:
            if len(images) == 1:
                raise
            if on_skip is not None:
                on_skip(str(image) if isinstance(image, (str, Path)) else f"input {position}", str(error))
            continue
        readable += 1
        yield position, array
    if images and not readable:
        raise ImageError(f"none of the {len(images)} inputs could be read as an image")


def read_mask(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask resized to (height, width) as booleans (defect = nonzero)."""
    with Image.open(path) as mask:
        check_pixel_count(*mask.size)
        gray = mask.convert("L").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(gray) >= 128
