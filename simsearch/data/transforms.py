"""Image to tensor, one home: RGB uint8 arrays -> float tensors (resize, ImageNet normalisation, ROI, gray)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

from simsearch.data.images import gray_channel
from simsearch.data.roi import apply_roi

if TYPE_CHECKING:  # torch on first use: a compiled embedder resizes with resize_rgb and never loads torch
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def unit_pixels(images: Sequence[np.ndarray], size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB uint8 arrays of any size -> (N, 3, size, size) floats in [0, 1].

    Resizing runs in PIL on uint8 (antialiased bilinear, several times faster than on float tensors)."""
    import torch

    if not len(images):
        return torch.zeros(0, 3, size, size, device=device)
    resized = np.stack([resize_rgb(image, size) for image in images])
    return torch.from_numpy(resized).to(device).permute(0, 3, 1, 2).float() / 255.0


def resize_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 array resized to (size, size) (antialiased bilinear in PIL); one already that size is
    returned as it is, so a loader thread can resize ahead of the network with the same result. A gray
    image read as a view of one channel is resized once, not three times (the same values)."""
    image = np.asarray(image, dtype=np.uint8)
    if image.shape[:2] == (size, size):
        return image
    gray = gray_channel(image)
    source = image if gray is None else np.ascontiguousarray(gray)
    resized = np.asarray(Image.fromarray(source).resize((size, size), Image.Resampling.BILINEAR))
    return resized if gray is None else np.repeat(resized[:, :, None], 3, axis=2)


def imagenet_pixels(images: Sequence[np.ndarray], size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB uint8 arrays of any size -> a batch normalised with the ImageNet statistics."""
    import torch

    pixels = unit_pixels(images, size, device)
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


def to_unit_tensor(images: Sequence[np.ndarray], size: int, channels: int = 3, roi: str | None = None,
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
