"""Shared fixtures: synthetic embeddings, small generated images, and the ../shared data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BOTTLE = SHARED / "data" / "mvtec_bottle"
ELPV = SHARED / "data" / "elpv_subset"
RESNET18_WEIGHTS = SHARED / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"


def need_shared(*paths: Path):
    """Skip (with the reason) when ../shared material is absent."""
    missing = [str(p) for p in paths if not p.exists()]
    return pytest.mark.skipif(bool(missing), reason=f"../shared material absent: {', '.join(missing)}")


@pytest.fixture(scope="session")
def small_embedder():
    """A randomly initialised ResNet-18 on 64x64 inputs: fast, deterministic, needs no weights."""
    from simsearch.embedder.backbone import BackboneEmbedder
    return BackboneEmbedder("resnet18", image_size=64, pretrained=False, device="cpu")


def part_image(rng: np.random.Generator, size: int = 64, defect: bool = False) -> np.ndarray:
    """A gray disc with light noise; a defect adds a bright square."""
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size * 0.4) ** 2
    image = np.where(disc, 150, 50).astype(np.float32) + rng.normal(0, 3, (size, size))
    if defect:
        y, x = rng.integers(size // 4, size // 2, 2)
        image[y:y + size // 6, x:x + size // 6] = 255
    return np.repeat(image.clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


@pytest.fixture
def part_folder(tmp_path):
    """good/ (12) and defect/spot/ (4) PNG folders of synthetic parts."""
    rng = np.random.default_rng(1)
    for label, count in (("good", 12), ("defect/spot", 4)):
        folder = tmp_path / "parts" / label
        folder.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(part_image(rng, defect=label != "good")).save(folder / f"{i:02d}.png")
    return tmp_path / "parts"
