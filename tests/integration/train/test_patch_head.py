"""The patch-level triplet head: patches mined from image-level labels (a defect image's patches least like
the good bank, or its mask's), trained on cached patch vectors; its embedder pools the projected patches."""

import numpy as np
import pytest
import torch
from PIL import Image

from simsearch.data.datasets import Sample
from simsearch.embed import create_embedder
from simsearch.embed.triplet_head import HeadConfig
from simsearch.errors import TrainingError
from simsearch.train.loop import TrainSettings
from simsearch.train.tasks.triplet_head import train_triplet_head
from tests.conftest import part_image


def _part_samples(folder, rng):
    """8 good and 4 defect part images written to folder, as samples."""
    samples = []
    for label, count in (("good", 8), ("defect", 4)):
        for i in range(count):
            path = folder / f"{label}{i}.png"
            Image.fromarray(part_image(rng, size=64, defect=label == "defect")).save(path)
            samples.append(Sample(path, label, "spot" if label == "defect" else None))
    return samples


def test_patch_level_training_gives_an_embedder_whose_image_vector_pools_its_patches(tmp_path, small_embedder):
    rng = np.random.default_rng(0)
    samples = _part_samples(tmp_path, rng)
    settings = TrainSettings(epochs=2, batch_size=8, val_fraction=0.25, device="cpu")
    result = train_triplet_head(samples, small_embedder, tmp_path / "run",
                                HeadConfig(embedding_dim=16, hidden_dim=32, level="patch"), settings)
    assert (tmp_path / "run" / "patch_features.pt").is_file() and "val_loss" in result.history[0]
    embedder = create_embedder(f"triplet-head:{result.model_path}", device="cpu")
    assert embedder.config["level"] == "patch"
    embeddings = embedder.embed([part_image(rng, size=64)])
    pooled = embeddings.patches.mean(axis=(1, 2))
    np.testing.assert_allclose(embeddings.image, pooled / np.linalg.norm(pooled, axis=1, keepdims=True), atol=1e-5)


def test_a_joined_head_puts_the_backbone_patch_vectors_beside_the_heads_each_in_its_own_units(tmp_path,
                                                                                             small_embedder):
    rng = np.random.default_rng(1)
    samples = _part_samples(tmp_path, rng)
    settings = TrainSettings(epochs=2, batch_size=8, val_fraction=0.25, device="cpu")
    result = train_triplet_head(samples, small_embedder, tmp_path / "run",
                                HeadConfig(embedding_dim=16, hidden_dim=32, level="patch", joined=True), settings)
    embedder = create_embedder(f"triplet-head:{result.model_path}", device="cpu")
    assert embedder.config["joined"] is True and embedder.dim == small_embedder.dim + 16
    scales = embedder.head.join_scales
    assert torch.all(scales > 0) and not torch.equal(scales, torch.ones(2))  # measured, not left at 1
    image = part_image(rng, size=64)
    embeddings, frozen = embedder.embed([image]), small_embedder.embed([image])
    # the first half is the backbone's patch vector in its unit; the image vector pools the joined patches
    np.testing.assert_allclose(embeddings.patches[..., :small_embedder.dim], frozen.patches / float(scales[0]),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(embeddings.image, embeddings.patches.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    gaps = embeddings.patches[..., small_embedder.dim:]
    np.testing.assert_allclose(np.linalg.norm(gaps, axis=-1), 1 / float(scales[1]), rtol=1e-4)


def test_a_joined_head_at_the_image_level_is_refused(tmp_path, small_embedder):
    samples = [Sample(tmp_path / "g.png", "good")]
    with pytest.raises(TrainingError, match="patch level"):
        train_triplet_head(samples, small_embedder, tmp_path / "run", HeadConfig(level="image", joined=True))
