"""Images -> the float tensors the trained models see: optional ROI crop, resize, gray or RGB, [0, 1]."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from simsearch.embedder.backbone import unit_pixels
from simsearch.metric.roi import apply_roi


def to_unit_tensor(images: Sequence[np.ndarray], size: int, channels: int = 3, roi: str | None = None,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB uint8 arrays of any size -> (N, channels, size, size) float in [0, 1] (channels 1 = gray)."""
    pixels = unit_pixels([apply_roi(np.asarray(image, dtype=np.uint8), roi) for image in images], size, device)
    if channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
        weights = torch.tensor([0.299, 0.587, 0.114], device=pixels.device).view(1, 3, 1, 1)
        pixels = (pixels * weights).sum(1, keepdim=True)
    return pixels.clamp(0.0, 1.0)


def to_uint8_arrays(batch: torch.Tensor) -> list[np.ndarray]:
    """(N, C, H, W) floats in [0, 1] -> RGB uint8 arrays (gray repeated), e.g. to feed augmented views to a backbone."""
    pixels = (batch.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [np.repeat(p, 3, axis=2) if p.shape[2] == 1 else np.ascontiguousarray(p) for p in pixels]
