"""Shared fixtures: synthetic embeddings, small generated images, and the ../shared data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# The index hands new exemplars to its scoring mode's `bank`, and simsearch.index may not import simsearch.score:
# register the built-in modes for the index's tests, unit and integration alike.
import simsearch.score.modes  # noqa: F401

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
    from simsearch.embed.backbone import BackboneEmbedder
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


def write_parts(root: Path, seed: int, n_good: int = 12, n_defect: int = 4) -> Path:
    """good/ and defect/spot/ PNG folders of synthetic parts under root."""
    rng = np.random.default_rng(seed)
    for label, count in (("good", n_good), ("defect/spot", n_defect)):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(part_image(rng, defect=label != "good")).save(folder / f"{i:02d}.png")
    return root


@pytest.fixture
def part_folder(tmp_path):
    """good/ (12) and defect/spot/ (4) PNG folders of synthetic parts."""
    return write_parts(tmp_path / "parts", seed=1)


@pytest.fixture
def fresh_parts(tmp_path):
    """Other synthetic parts (8 good, 4 defect), for calibrating an index built on part_folder."""
    return write_parts(tmp_path / "fresh", seed=2, n_good=8)
