"""The no-set-up demo: a synthetic inspection set (round machined parts with scratches and spots, in
MVTec AD layout, masks included), indexed and scored with a randomly initialised ResNet-18."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import discover_samples
from simsearch.embed.backbone import BackboneEmbedder
from simsearch.evaluate.evaluation import Evaluation, evaluate_dataset
from simsearch.inspector import Inspector, calibrate_index

SIZE = 160


def synthetic_part(rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    """A grayscale round part: a washer with machining rings and sensor noise, slightly shifted."""
    image = Image.new("L", (size, size), color=int(rng.integers(40, 50)))
    draw = ImageDraw.Draw(image)
    cx, cy = size / 2 + rng.normal(0, 1.5), size / 2 + rng.normal(0, 1.5)
    outer, inner = size * 0.42, size * 0.16
    for ring, radius in enumerate(np.linspace(outer, inner, 9)):
        shade = int(150 + 25 * np.sin(ring * 1.3) + rng.normal(0, 2))
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=shade)
    draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=int(rng.integers(40, 50)))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float32)
    pixels += rng.normal(0, 3, pixels.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def add_defect(image: Image.Image, kind: str, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    """Draw a scratch or a spot on the ring; return the image and its defect mask."""
    size = image.size[0]
    mask = Image.new("L", image.size, 0)
    angle = rng.uniform(0, 2 * np.pi)
    radius = size * rng.uniform(0.24, 0.36)
    x, y = size / 2 + radius * np.cos(angle), size / 2 + radius * np.sin(angle)
    image = image.copy()
    for target, value in ((ImageDraw.Draw(image), None), (ImageDraw.Draw(mask), 255)):
        if kind == "scratch":
            dx, dy = size * 0.12 * np.cos(angle + 1.2), size * 0.12 * np.sin(angle + 1.2)
            target.line([x - dx, y - dy, x + dx, y + dy], fill=value if value else 20, width=3)
        else:
            r = size * rng.uniform(0.03, 0.05)
            target.ellipse([x - r, y - r, x + r, y + r], fill=value if value else 245)
    return image, mask


def make_demo_dataset(root: str | Path, n_train: int = 30, n_test_good: int = 10, n_per_defect: int = 6,
                      seed: int = 0) -> Path:
    """Write the synthetic set as an MVTec AD category (train/good, test/<type>, ground_truth/<type>)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    folders = {name: root / name for name in ("train/good", "test/good", "test/scratch", "test/spot",
                                              "ground_truth/scratch", "ground_truth/spot")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        synthetic_part(rng).save(folders["train/good"] / f"{i:03d}.png")
    for i in range(n_test_good):
        synthetic_part(rng).save(folders["test/good"] / f"{i:03d}.png")
    for kind in ("scratch", "spot"):
        for i in range(n_per_defect):
            image, mask = add_defect(synthetic_part(rng), kind, rng)
            image.save(folders[f"test/{kind}"] / f"{i:03d}.png")
            mask.save(folders[f"ground_truth/{kind}"] / f"{i:03d}_mask.png")
    return root


def run_demo(out: str | Path = "artifacts/demo", callbacks: Callbacks | None = None) -> Evaluation:
    """Make the data, build a patch index with random weights, and evaluate it on the test images."""
    out = Path(out)
    data = make_demo_dataset(out / "data")
    embedder = BackboneEmbedder("resnet18", image_size=SIZE, pretrained=False)
    inspector = Inspector(embedder, mode="patch", coreset_ratio=0.25).fit(data, callbacks=callbacks)
    # no defects are needed to set a threshold: 5% false alarms from the good exemplars, left out one at a time
    calibrate_index(inspector, None, "good-only", 0.05, callbacks=callbacks)
    inspector.save(out / "index", force=True, compile=True)  # the demo remakes its own index, as build-index
    return evaluate_dataset(inspector, discover_samples(data), callbacks)
