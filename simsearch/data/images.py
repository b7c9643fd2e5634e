"""Reading inspection images: any common format in, an RGB uint8 array out, with size caps."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from simsearch.data.callbacks import Callbacks
from simsearch.errors import InputError

IMAGE_SUFFIXES = frozenset({".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff"})

# Decompression bombs: refuse anything above this many pixels before decoding it.
MAX_PIXELS = int(os.environ.get("SIMSEARCH_MAX_PIXELS", 100_000_000))
MAX_FILE_BYTES = int(os.environ.get("SIMSEARCH_MAX_FILE_BYTES", 200 * 1024 * 1024))
# What one decode may hold at its peak (`decode_cost`): JPEGs are decoded reduced (DCT scaling) and stay far
# below it; a PNG or TIFF is decoded whole before it is reduced, so a very large one is refused, with the fix.
MAX_DECODE_BYTES = int(float(os.environ.get("SIMSEARCH_MAX_DECODE_MB", 300)) * 1024 * 1024)

log = logging.getLogger("simsearch.data")  # notes for the user; the CLI prints them as warning lines

# Pillow warns (two raw lines on stderr) above its own 89.5 MP; our cap (MAX_PIXELS) is checked from the header
# before any decode, and larger images are reduced while decoding (DECODE_MAX_SIDE), so its warning says nothing.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

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


# Pillow's bytes per pixel by mode ("1", "L", "P" one byte; 16-bit two); every other mode takes four.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
# Larger images are reduced while decoding (JPEG draft, Image.reduce): the embedder and the anomaly maps
# work at 224 px, so 2048 px keeps every detail they use and bounds what one upload costs.
DECODE_MAX_SIDE = 2048


def to_rgb_array(image: Image.Image, gray_view: bool = False) -> np.ndarray:
    """Convert a PIL image of any mode (1/L/P/I;16/I/F/RGBA/CMYK...) to an (H, W, 3) uint8 array; with
    gray_view a gray image comes back as a read-only view of its one channel (see `gray_channel`)."""
    if image.mode in _SIXTEEN_BIT + ("I", "F"):
        # 16-bit and float images: stretch the used range to 8 bits instead of clipping at 255. A lookup
        # table (16-bit) or float32 in place (I, F) keeps this at a few bytes per pixel, never float64.
        values = np.asarray(image)
        low, high = values.min(), values.max()
        if high <= low:
            gray = np.zeros(values.shape, dtype=np.uint8)
        elif values.dtype.itemsize == 2:
            table = (np.arange(65536, dtype=np.float64) - float(low)) / (float(high) - float(low)) * 255.0
            gray = table.round().clip(0, 255).astype(np.uint8)[values]
        else:
            scaled = np.subtract(values, low, dtype=np.float32)
            scaled *= np.float32(255.0 / (float(high) - float(low)))
            gray = np.rint(scaled, out=scaled).clip(0, 255).astype(np.uint8)
        return _gray_to_rgb(gray, gray_view)
    if gray_view and image.mode in ("1", "L"):
        return _gray_to_rgb(np.asarray(image.convert("L"), dtype=np.uint8), True)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def _gray_to_rgb(gray: np.ndarray, view: bool) -> np.ndarray:
    if view:  # three channels that share one: no copies until something needs them
        return np.broadcast_to(gray[:, :, None], (*gray.shape, 3))
    return np.repeat(gray[:, :, None], 3, axis=2)


def gray_channel(pixels: np.ndarray) -> np.ndarray | None:
    """The one channel behind an RGB array read with gray_view (its channels share memory), else None."""
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.strides[2] == 0:
        return pixels[:, :, 0]
    return None


class DecodeBudget:
    """Bounds the bytes that concurrent decodes hold at once: a semaphore weighted by the bytes each decode
    is estimated to need from its header. One decode larger than the whole budget runs alone."""

    def __init__(self, limit_bytes: int):
        self.limit = int(limit_bytes)
        self.used = 0
        self._condition = threading.Condition()

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        """Wait until nbytes fit in the budget, and hold them for the block."""
        nbytes = min(int(nbytes), self.limit)
        with self._condition:
            self._condition.wait_for(lambda: self.used + nbytes <= self.limit)
            self.used += nbytes
        try:
            yield
        finally:
            with self._condition:
                self.used -= nbytes
                self._condition.notify_all()


@dataclass
class DecodedImage:
    """An image as decoded: RGB pixels (maybe reduced), its size before reduction, and notes for the user."""

    pixels: np.ndarray
    original_size: tuple[int, int]  # (height, width) of the stored image, after EXIF orientation
    notes: list[str] = field(default_factory=list)

    @property
    def scale(self) -> tuple[float, float]:
        """(y, x) factors from the pixels' frame to the original's."""
        return self.original_size[0] / self.pixels.shape[0], self.original_size[1] / self.pixels.shape[1]


def reduced_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) after dividing by the smallest integer factor that brings the longest side to max_side."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    factor = -(-max(width, height) // max_side)
    return max(1, width // factor), max(1, height // factor)


def decode_cost(mode: str, width: int, height: int, target: tuple[int, int]) -> int:
    """Bytes a decode is estimated to hold at its peak: the decoded image, the reduction's intermediate and
    the RGB output with its conversions."""
    per_pixel = _BYTES_PER_PIXEL.get(mode, 4)
    reduced = target != (width, height)
    return width * height * per_pixel + (target[0] * height * 4 if reduced else 0) + target[0] * target[1] * 8


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a damaged EXIF block must not make a readable image unreadable
        return 1


def image_shape(path: str | Path) -> tuple[int, int] | None:
    """(height, width) of an image file as it will be read (EXIF rotation applied), from its header alone; None
    where the file cannot be opened."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            return (width, height) if _orientation(image) in (5, 6, 7, 8) else (height, width)
    except Exception:  # unreadable here: the reader says why when it comes to the file
        return None


def _reduce(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    if target == image.size:
        return image
    factor = max(image.size[0] // target[0], image.size[1] // target[1])
    if image.mode in _SIXTEEN_BIT:  # Image.reduce has no 16-bit path; a box resize is its equivalent
        return image.resize(target, Image.Resampling.BOX)
    return image.reduce(factor)


def decode_image(source: str | Path | io.BytesIO, name: str, max_pixels: int = MAX_PIXELS,
                 max_side: int | None = None, budget: DecodeBudget | None = None,
                 gray_view: bool = False) -> DecodedImage:
    """Open (header only), check the pixel count, then decode to RGB, reduced to max_side when larger (None:
    full size), EXIF orientation applied, first frame of animations; errors are prefixed with name. With
    gray_view a gray image's pixels are a read-only view of its one channel (a loader that resizes saves
    two thirds of the work; `resize_rgb` sees it)."""
    try:
        with Image.open(source) as image:
            # The header's size decides before any pixel is decoded; no process-wide state is touched, so
            # concurrent decodes cannot change each other's limits.
            check_pixel_count(*image.size, max_pixels=max_pixels)
            notes = []
            if getattr(image, "is_animated", False):
                notes.append(f"{name}: has several frames (animation or pages); only the first is scored")
            orientation = _orientation(image)
            header = image.size  # JPEG draft scaling below shrinks image.size
            target = reduced_size(*image.size, max_side)
            if image.format == "JPEG" and target != image.size:
                image.draft("RGB" if image.mode not in ("L", "CMYK") else image.mode, target)  # DCT scaling
                target = reduced_size(*image.size, max_side)
            cost = decode_cost(image.mode, *image.size, target)
            if cost > MAX_DECODE_BYTES:
                raise ImageTooLargeError(
                    f"decoding this {header[0]}x{header[1]} {image.format or ''} image would hold about "
                    f"{cost / 2 ** 20:.0f} MB, over the {MAX_DECODE_BYTES / 2 ** 20:.0f} MB one decode may use",
                    hint="save it smaller or as a JPEG (decoded reduced), or set SIMSEARCH_MAX_DECODE_MB")
            with budget.hold(cost) if budget else contextlib.nullcontext():
                image.load()
                reduced = _reduce(image, target)
                if orientation != 1:
                    reduced.getexif()[ExifTags.Base.Orientation] = orientation
                    reduced = ImageOps.exif_transpose(reduced)
                pixels = to_rgb_array(reduced, gray_view)
            width, height = header if orientation in (1, 2, 3, 4) else header[::-1]  # 5-8 swap the sides
            return DecodedImage(pixels, (height, width), notes)
    except ImageError as error:
        raise type(error)(f"{name}: {error.message}", hint=error.hint, parameter=error.parameter) from None
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{name}: {error}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a readable image (unknown format or corrupt)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{name}: not a readable image ({error})") from None


def _decode(source: str | Path | io.BytesIO, name: str, max_pixels: int, gray_view: bool = False) -> np.ndarray:
    """Full-size RGB pixels of one image; notes (several frames) go to the simsearch logger."""
    decoded = decode_image(source, name, max_pixels, gray_view=gray_view)
    for note in decoded.notes:
        log.warning(note)
    return decoded.pixels


def _checked_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageTooLargeError(f"{path}: file is {size / 1e6:.0f} MB, over the cap of "
                                 f"{MAX_FILE_BYTES / 1e6:.0f} MB")
    return path


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS, gray_view: bool = False) -> np.ndarray:
    """Read an image file into an (H, W, 3) uint8 RGB array at full size; ImageError when it cannot. gray_view:
    a gray file comes back as a read-only view of its one channel."""
    path = _checked_file(path)
    return _decode(path, str(path), max_pixels, gray_view)


# Decodes of files to embed, across a process's loader threads: bytes held at once (one larger decode runs alone).
FILE_DECODE_BUDGET = DecodeBudget(1 << 30)


def read_image_reduced(path: str | Path, max_pixels: int = MAX_PIXELS, gray_view: bool = False,
                       max_side: int = DECODE_MAX_SIDE) -> DecodedImage:
    """Read an image file to embed: as the service decodes uploads (`decode_image`), reduced while decoding to
    `max_side` when larger (JPEG DCT scaling, Image.reduce), within FILE_DECODE_BUDGET; its `original_size` is
    the stored image's, for boxes in original pixels. Notes (several frames) go to the simsearch logger."""
    path = _checked_file(path)
    decoded = decode_image(path, str(path), max_pixels, max_side, FILE_DECODE_BUDGET, gray_view)
    for note in decoded.notes:
        log.warning(note)
    return decoded


def read_image_bytes(data: bytes, max_pixels: int = MAX_PIXELS, name: str = "upload") -> np.ndarray:
    """Decode an encoded image held in memory (e.g. an HTTP upload) like read_image does a file."""
    if not data:
        raise ImageError(f"{name}: empty file")
    return _decode(io.BytesIO(data), name, max_pixels)


def as_rgb_array(image: ImageLike, max_pixels: int = MAX_PIXELS, gray_view: bool = False) -> np.ndarray:
    """Accept a path, a PIL image or a numpy array (HxW, HxWx1, HxWx3, HxWx4) and return RGB uint8 (gray_view:
    a gray file as a read-only view of its one channel)."""
    if isinstance(image, (str, Path)):
        return read_image(image, max_pixels=max_pixels, gray_view=gray_view)
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


def has_utf8_name(path: str | Path) -> bool:
    """False for a path whose bytes are not UTF-8 (a Latin-1 name on Linux: Python holds it with surrogate
    escapes), which an index catalogue, JSON and the service cannot store as text."""
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def shown_path(path: str | Path) -> str:
    """A path as text that can always be printed and saved: bytes that are not UTF-8 as \\xNN."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def is_image_file(path: Path) -> bool:
    """True when the file name has an image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES


# Masks are labels, never parts, whatever the tree around them is called: MVTec's ground_truth/, masks/,
# label*/ folders (not labelled/ or labeled/, which name data) and *_mask files.
MASK_FOLDER_NAMES = frozenset({"ground_truth", "groundtruth", "ground-truth", "gt", "mask", "masks"})
MASK_NAME_ENDINGS = ("_mask", "-mask", ".mask", "_gt")


def is_mask_folder(folder: Path) -> bool:
    """True for a folder of masks (ground_truth/, masks/, gt/, label*/): its files are labels, not images."""
    name = folder.name.lower()
    return name in MASK_FOLDER_NAMES or (name.startswith("label") and not name.startswith(("labelled", "labeled")))


def is_mask_file(path: Path) -> bool:
    """True for an image file named as a mask (`003_mask.png`, `003-mask.png`, `003_gt.png`)."""
    return path.stem.lower().endswith(MASK_NAME_ENDINGS)


def _walk_images(root: Path, masks: list[Path] | None = None) -> list[Path]:
    """Image files under root, sorted, following symlinked folders and files; a folder reached twice (a
    symlink loop, or two links to one folder) is walked once. Mask folders and mask files are not images:
    they go to `masks` when given."""
    found: list[Path] = []
    seen: set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # os.walk does not guard against loops when it follows links
            subfolders[:] = []
            continue
        seen.add(real)
        mask_folders = [name for name in subfolders if is_mask_folder(Path(folder) / name)]
        subfolders[:] = sorted(name for name in subfolders if name not in mask_folders)
        if masks is not None:
            for name in mask_folders:
                masks.extend(_walk_all_images(Path(folder) / name))
        for name in files:
            path = Path(folder) / name
            if is_image_file(path) and path.is_file():  # is_file follows a link; a dangling link is dropped
                if is_mask_file(path):
                    if masks is not None:
                        masks.append(path)
                else:
                    found.append(path)
    return sorted(found)


def _walk_all_images(root: Path) -> list[Path]:
    """Every image file under a mask folder (to count what was left out)."""
    return [Path(folder) / name for folder, _, files in os.walk(root, followlinks=False) for name in files
            if is_image_file(Path(name))]


def find_image_files(root: str | Path) -> tuple[list[Path], list[Path]]:
    """The images under a folder and, apart, the mask files there (in mask folders or named as masks)."""
    masks: list[Path] = []
    return _walk_images(Path(root), masks), sorted(masks)


def list_image_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (recursively, following symlinks) into a sorted list of image files.

    Files given by name are kept whatever their suffix (reading decides); inside folders only image
    suffixes count, and masks are skipped (mask folders: ground_truth/, masks/, gt/, label*/; files named
    *_mask): they are labels, not images to score.
    A missing path raises FileNotFoundError.
    """
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found.extend(_walk_images(path))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def read_input(image: ImageLike, gray_view: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """(RGB pixels, (height, width) of the original) of an input to embed: a file reduced while decoding when it
    is larger than DECODE_MAX_SIDE (`read_image_reduced`), an in-memory image as it is (`as_rgb_array`)."""
    if isinstance(image, (str, Path)):
        decoded = read_image_reduced(image, gray_view=gray_view)
        return decoded.pixels, decoded.original_size
    pixels = as_rgb_array(image, gray_view=gray_view)
    return pixels, (int(pixels.shape[0]), int(pixels.shape[1]))


def input_name(image: ImageLike, position: int) -> str:
    """How an input is named where it is skipped: its path, or `input N` (its position) for an in-memory image."""
    return str(image) if isinstance(image, (str, Path)) else f"input {position}"


def iter_readable_images(
    images: Sequence[ImageLike],
    callbacks: Callbacks | None = None,
    gray_view: bool = False,
) -> Iterator[tuple[int, np.ndarray, tuple[int, int]]]:
    """Yield (position, RGB array, original size) for each readable input (path, PIL image or array; files larger
    than DECODE_MAX_SIDE reduced, see `read_input`); unreadable ones go to callbacks.skip(name, reason). A single
    unreadable input is an error, and so is a list where none is readable. gray_view: gray files as read-only
    views of their one channel (see `read_image`)."""
    readable = 0
    for position, image in enumerate(images):
        try:
            array, size = read_input(image, gray_view=gray_view)
        except ImageError as error:
            if len(images) == 1:
                raise
            (callbacks or Callbacks()).skip(input_name(image, position), str(error))
            continue
        readable += 1
        yield position, array, size
    if images and not readable:
        raise ImageError(f"none of the {len(images)} inputs could be read as an image")


def read_mask(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask resized to (height, width) as booleans (defect = nonzero)."""
    with Image.open(path) as mask:
        check_pixel_count(*mask.size)
        gray = mask.convert("L").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(gray) >= 128


PATCH_MASK_DETAIL = 8  # a mask is read at this many pixels per patch side, so small defects still mark a patch


def patch_mask(path: str | Path, grid: tuple[int, int]) -> np.ndarray:
    """The (h, w) patches of a grid that a ground-truth mask touches anywhere."""
    fine = read_mask(path, (grid[0] * PATCH_MASK_DETAIL, grid[1] * PATCH_MASK_DETAIL))
    return fine.reshape(grid[0], PATCH_MASK_DETAIL, grid[1], PATCH_MASK_DETAIL).any(axis=(1, 3))
