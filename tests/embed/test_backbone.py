import numpy as np
import pytest
import torch

from simsearch.embed import create_embedder, embedder_from_config
from simsearch.embed.backbone import BackboneEmbedder
from simsearch.embed.weights import WeightsError
from simsearch.errors import UnknownComponentError


def test_shapes_and_image_vector_is_pooled_patches(small_embedder):
    images = [np.zeros((50, 70, 3), np.uint8), np.full((64, 64, 3), 200, np.uint8)]
    out = small_embedder.embed(images)
    assert out.image.shape == (2, 384) and out.patches.shape == (2, 8, 8, 384)
    assert np.allclose(out.image, out.patches.mean(axis=(1, 2)), atol=1e-5)


def test_config_round_trip_keeps_fingerprint(small_embedder):
    rebuilt = embedder_from_config(small_embedder.config, device="cpu")
    assert rebuilt.fingerprint == small_embedder.fingerprint


def test_fingerprint_changes_with_weights_and_preprocessing(small_embedder, tmp_path):
    trunk_state = {k: v.clone() for k, v in small_embedder.model.body.state_dict().items()}
    trunk_state["layer1.0.conv1.weight"] += 0.01
    torch.save(trunk_state, tmp_path / "w.pth")
    other = BackboneEmbedder("resnet18", image_size=64, weights=tmp_path / "w.pth", device="cpu")
    bigger = BackboneEmbedder("resnet18", image_size=96, pretrained=False, device="cpu")
    assert len({small_embedder.fingerprint, other.fingerprint, bigger.fingerprint}) == 3


def test_partial_weights_file_missing_used_tensors_is_named(tmp_path, small_embedder):
    state = small_embedder.model.body.state_dict()
    partial = {k: v for k, v in state.items() if not k.startswith("layer3.1.conv2")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(WeightsError, match="layer3.1.conv2.weight"):
        BackboneEmbedder("resnet18", image_size=64, weights=tmp_path / "partial.pth", device="cpu")
    # layer4 and fc are never run, so a file without them is fine
    torch.save(state, tmp_path / "no_layer4.pth")
    BackboneEmbedder("resnet18", image_size=64, weights=tmp_path / "no_layer4.pth", device="cpu")


def test_a_pickle_that_is_not_a_state_dict_is_refused(tmp_path):
    (tmp_path / "evil.pth").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="not a loadable state dict"):
        BackboneEmbedder("resnet18", weights=tmp_path / "evil.pth", device="cpu")


def test_offline_without_cache_says_how_to_supply_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(WeightsError, match="hub/checkpoints") as info:
        create_embedder("backbone:resnet18", device="cpu")
    assert info.value.parameter == "weights" and "resnet18-imagenet1k-v1-layers1to3.pth" in info.value.hint
    with pytest.raises(WeightsError, match="efficientnet_b0") as info:
        create_embedder("backbone:efficientnet_b0", device="cpu")
    assert info.value.parameter == "weights" and "resnet18" not in info.value.hint
    assert "{param}" in info.value.hint


def test_unknown_backbone():
    with pytest.raises(UnknownComponentError, match="unknown backbone") as info:
        BackboneEmbedder("resnet9000", pretrained=False)
    assert info.value.parameter == "backbone"
