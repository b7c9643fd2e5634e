"""The triplet-head embedder: a frozen backbone + trained head, rebuilt from its config, patch vectors too."""

import numpy as np
import pytest

from simsearch.data.datasets import Sample
from simsearch.embed import create_embedder, embedder_from_config
from simsearch.embed.backbone import BackboneEmbedder
from simsearch.embed.triplet_head import HeadConfig
from simsearch.embed.weights import WeightsError
from simsearch.train.loop import TrainSettings
from simsearch.train.tasks.triplet_head import train_triplet_head
from tests.conftest import part_image


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from PIL import Image
    folder = tmp_path_factory.mktemp("head")
    rng = np.random.default_rng(0)
    samples = []
    for label, count in (("good", 8), ("defect", 6)):
        for i in range(count):
            path = folder / f"{label}{i}.png"
            Image.fromarray(part_image(rng, defect=label == "defect")).save(path)
            samples.append(Sample(path, label))
    backbone = BackboneEmbedder("resnet18", image_size=64, pretrained=False, device="cpu")
    result = train_triplet_head(samples, backbone, folder / "run", HeadConfig(embedding_dim=16, hidden_dim=32),
                                TrainSettings(epochs=2, batch_size=8, val_fraction=0.3, device="cpu"), views=2)
    return result, samples, backbone


def test_vectors_go_through_the_head(trained):
    result, _, backbone = trained
    embedder = create_embedder(f"triplet-head:{result.model_path}", device="cpu")
    images = [part_image(np.random.default_rng(3)) for _ in range(2)]
    out = embedder.embed(images)
    assert embedder.dim == 16 and out.image.shape == (2, 16) and out.patches.shape[-1] == 16
    assert out.patches.shape[1:3] == backbone.embed(images).patches.shape[1:3]
    assert np.allclose(np.linalg.norm(out.image, axis=1), 1, atol=1e-5)
    again = embedder_from_config(embedder.config)
    assert again.fingerprint == embedder.fingerprint
    np.testing.assert_allclose(again.embed(images).image, out.image, atol=1e-5)
    assert embedder.fingerprint != backbone.fingerprint


def test_features_are_cached_and_reused(trained):
    result, _, _ = trained
    assert (result.out_dir / "features.pt").is_file()


def test_moved_checkpoint_is_named(trained, tmp_path):
    result, _, _ = trained
    config = {**create_embedder(f"triplet-head:{result.model_path}", device="cpu").config,
              "weights_path": str(tmp_path / "gone.pt")}
    with pytest.raises(WeightsError, match="gone.pt"):
        embedder_from_config(config)
    with pytest.raises(WeightsError, match="not a triplet-ae"):
        create_embedder(f"triplet-ae:{result.model_path}")
