"""On-line augmentation for inspection images: the seed's 4 rotations x 3 flips, brightness/contrast jitter.

Everything works on float tensors (N, C, H, W) in [0, 1], on whatever device they live on.
"""

from __future__ import annotations

import torch

# (quarter turns, flip) pairs of the seed: 4 rotations x (none, horizontal, vertical); 12 pairs that cover
# the 8 symmetries of the square, the identity included.
ORIENTATIONS = tuple((turns, flip) for turns in range(4) for flip in (None, "h", "v"))


def orient(image: torch.Tensor, turns: int, flip: str | None) -> torch.Tensor:
    """Rotate a (..., H, W) tensor by quarter turns, then flip it horizontally ('h') or vertically ('v')."""
    out = torch.rot90(image, turns, dims=(-2, -1))
    if flip == "h":
        out = torch.flip(out, dims=(-1,))
    elif flip == "v":
        out = torch.flip(out, dims=(-2,))
    return out


def jitter(image: torch.Tensor, brightness: float, contrast: float) -> torch.Tensor:
    """Scale contrast around the image mean by `contrast`, add `brightness`, clamp to [0, 1]."""
    mean = image.mean(dim=(-3, -2, -1), keepdim=True)
    return ((image - mean) * contrast + mean + brightness).clamp(0.0, 1.0)


class InspectionAugment:
    """A random orientation (of the 12) and a brightness/contrast jitter per image."""

    def __init__(self, orientations: bool = True, brightness: float = 0.1, contrast: float = 0.1):
        self.orientations = orientations
        self.brightness = float(brightness)
        self.contrast = float(contrast)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = []
        for image in batch:
            if self.orientations:
                turns, flip = ORIENTATIONS[int(torch.randint(len(ORIENTATIONS), (1,), generator=generator))]
                image = orient(image, turns, flip)
            draws = torch.rand(2, generator=generator).tolist()
            image = jitter(image, (2 * draws[0] - 1) * self.brightness, 1 + (2 * draws[1] - 1) * self.contrast)
            out.append(image)
        return torch.stack(out)
