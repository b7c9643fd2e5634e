"""Class activation maps (Zhou et al. 2016, seeds 001/002): the defect class's map, upsampled, as a bounding box."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from simsearch.baselines.models import CamClassifier
from simsearch.score.maps import resize_map
from simsearch.score.results import Box

DEFECT_CLASS = 1
BOX_THRESHOLD = 0.7  # seed 001's heatmap_thres: fraction of the map's range above which pixels count


def class_activation_maps(model: CamClassifier, pixels: torch.Tensor, target: int = DEFECT_CLASS) -> torch.Tensor:
    """(N, h, w) maps: the last block's feature maps weighted by the head's weights for the target class."""
    features = model.feature_maps(pixels)
    weights = model.head.weight[target]
    return torch.einsum("nchw,c->nhw", features, weights)


def upsample_map(cam: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """A (h, w) map bilinearly resized to (height, width) of the original image."""
    return resize_map(cam, *image_size)


def map_to_box(heatmap: np.ndarray, threshold: float = BOX_THRESHOLD) -> Box | None:
    """The box around the connected region holding the map's peak, where the min-max normalised map > threshold.

    The box's score is the raw map's peak. None for a flat map (nothing stands out).
    """
    low, high = float(heatmap.min()), float(heatmap.max())
    if not high > low:
        return None
    normalised = (heatmap - low) / (high - low)
    regions, _ = ndimage.label(normalised > threshold)
    peak = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    ys, xs = np.nonzero(regions == regions[peak])
    return Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, high)
