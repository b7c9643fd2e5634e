"""Image to tensor, one home: RGB uint8 arrays -> float tensors (resize, ImageNet normalisation, ROI, gray)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence, Union

import numpy as np
from PIL import Image

from simsearch.data.images import gray_channel, image_shape
from simsearch.data.roi import apply_roi
from simsearch.errors import InputError

if TYPE_CHECKING:  # torch on first use: a compiled embedder resizes with resize_rgb and never loads torch
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# A network's input size: an int is a square side, (height, width) a rectangle (an image's aspect ratio kept).
ImageSize = Union[int, tuple[int, int]]
SIZE_STEP = 16  # a kept aspect's long side is a multiple of the backbone's patch stride
MAX_ASPECT = 4.0  # longer images are squashed to this ratio: a line-scan strip would make inputs without bound
SIZE_RANGE = (8, 4096)
ASPECTS = ("keep", "square")


def input_shape(size: ImageSize) -> tuple[int, int]:
    """(height, width) of a network input size."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def parse_size(value: object, what: str = "image size") -> ImageSize:
    """An input size read from a config, a file or a request: a whole side, or [height, width], each within
    SIZE_RANGE; anything else raises ValueError naming `what`."""
    def side(v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer() \
                or not SIZE_RANGE[0] <= v <= SIZE_RANGE[1]:
            raise ValueError(f"{what} {value!r} is not a size within {SIZE_RANGE[0]}..{SIZE_RANGE[1]} px")
        return int(v)

    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{what} {value!r} is not a side or [height, width]")
        height, width = side(value[0]), side(value[1])
        return height if height == width else (height, width)
    return side(value)


def size_config(size: ImageSize) -> int | list[int]:
    """An input size as JSON: the side, or [height, width]."""
    return size if isinstance(size, int) else [int(size[0]), int(size[1])]


def size_text(size: ImageSize) -> str:
    """224 px, or 224x299 px (height x width)."""
    height, width = input_shape(size)
    return f"{height} px" if height == width else f"{height}x{width} px"


def kept_aspect(side: int, shapes: Iterable[tuple[int, int]]) -> ImageSize:
    """The input size that keeps the images' aspect ratio (the median of `shapes`, (height, width) each): `side`
    on the short side, the long side in proportion, a multiple of SIZE_STEP and at most MAX_ASPECT times the
    short one; `side` itself where the images are (nearly) square. A thin crack across a 500x1250 picture
    squashed to a square loses 2.5 times more pixels along the long side than across."""
    ratios = [w / h for h, w in shapes if h > 0 and w > 0]
    if not ratios:
        return side
    ratio = float(np.median(ratios))
    long_side = side * min(max(ratio, 1 / ratio), MAX_ASPECT)
    long_side = max(side, int(math.floor(long_side / SIZE_STEP + 0.5)) * SIZE_STEP)
    if long_side == side:
        return side
    return (side, long_side) if ratio > 1 else (long_side, side)


def check_aspect(aspect: str) -> str:
    """`aspect` where it is one of ASPECTS, else an InputError naming them (checked here for every face)."""
    if aspect not in ASPECTS:
        raise InputError(f"{{param:aspect}} must be one of {', '.join(ASPECTS)}, not {aspect!r}",
                         hint=f"give {{param}} {' or '.join(ASPECTS)}", parameter="aspect")
    return aspect


def input_size_for(paths: Sequence[str | Path], side: int, aspect: str = "keep", sample: int = 50) -> ImageSize:
    """The input size for images like `paths` (the headers of up to `sample` of them, spread over the list):
    `side` square, or with aspect "keep" the images' aspect ratio kept (`kept_aspect`)."""
    if check_aspect(aspect) == "square" or not len(paths):
        return side
    step = max(1, len(paths) // sample)
    shapes = [image_shape(path) for path in list(paths)[::step][:sample]]
    return kept_aspect(side, [shape for shape in shapes if shape])


def unit_pixels(images: Sequence[np.ndarray], size: ImageSize, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB uint8 arrays of any size -> (N, 3, height, width) floats in [0, 1].

    Resizing runs in PIL on uint8 (antialiased bilinear, several times faster than on float tensors)."""
    import torch

    if not len(images):
        return torch.zeros(0, 3, *input_shape(size), device=device)
    resized = np.stack([resize_rgb(image, size) for image in images])
    return torch.from_numpy(resized).to(device).permute(0, 3, 1, 2).float() / 255.0


def resize_rgb(image: np.ndarray, size: ImageSize) -> np.ndarray:
    """An RGB uint8 array resized to the input size (antialiased bilinear in PIL); one already that size is
    returned as it is, so a loader thread can resize ahead of the network with the same result. A gray
    image read as a view of one channel is resized once, not three times (the same values)."""
    image = np.asarray(image, dtype=np.uint8)
    height, width = input_shape(size)
    if image.shape[:2] == (height, width):
        return image
    gray = gray_channel(image)
    source = image if gray is None else np.ascontiguousarray(gray)
    resized = np.asarray(Image.fromarray(source).resize((width, height), Image.Resampling.BILINEAR))
    return resized if gray is None else np.repeat(resized[:, :, None], 3, axis=2)


def imagenet_pixels(images: Sequence[np.ndarray], size: ImageSize, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB uint8 arrays of any size -> a batch normalised with the ImageNet statistics."""
    import torch

    pixels = unit_pixels(images, size, device)
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


def to_unit_tensor(images: Sequence[np.ndarray], size: ImageSize, channels: int = 3, roi: str | None = None,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB uint8 arrays of any size -> (N, channels, size, size) float in [0, 1] (channels 1 = gray)."""
    import torch

    pixels = unit_pixels([apply_roi(np.asarray(image, dtype=np.uint8), roi) for image in images], size, device)
    if channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
        weights = torch.tensor([0.299, 0.587, 0.114], device=pixels.device).view(1, 3, 1, 1)
        pixels = (pixels * weights).sum(1, keepdim=True)
    return pixels.clamp(0.0, 1.0)


def to_uint8_arrays(batch: torch.Tensor) -> list[np.ndarray]:
    """(N, C, H, W) floats in [0, 1] -> RGB uint8 arrays (gray repeated), e.g. to feed augmented views to a backbone."""
    import torch

    pixels = (batch.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [np.repeat(p, 3, axis=2) if p.shape[2] == 1 else np.ascontiguousarray(p) for p in pixels]
