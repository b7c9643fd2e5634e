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


# Recorded before the move to FeatureExtractor: indexes built before must still open.
RESNET18_RANDOM_FINGERPRINT = "e4adfdc62306f5cb"


def test_resnet18_vectors_and_fingerprint_are_unchanged():
    import torch.nn.functional as F
    import torchvision

    from simsearch.data.transforms import imagenet_pixels

    embedder = BackboneEmbedder("resnet18", pretrained=False, device="cpu")
    assert embedder.fingerprint == RESNET18_RANDOM_FINGERPRINT
    assert embedder.config["layers"] == ["layer2", "layer3"]
    torch.manual_seed(0)
    trunk = torchvision.models.resnet18(weights=None).eval()
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    with torch.no_grad():  # the ResNet path by hand: stem, layer1..3, 3x3 average, resize, concatenate
        x = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(imagenet_pixels([image], 224, "cpu")))))
        l2 = trunk.layer2(trunk.layer1(x))
        l3 = trunk.layer3(l2)
        local = [F.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=True) for m in (l2, l3)]
        expected = torch.cat([local[0], F.interpolate(local[1], size=l2.shape[-2:], mode="bilinear",
                                                      align_corners=False)], dim=1).permute(0, 2, 3, 1).numpy()
    out = embedder.embed([image])
    np.testing.assert_allclose(out.patches, expected, rtol=1e-5, atol=1e-5)
    assert set(embedder.model.body.state_dict()) == {
        k for k in trunk.state_dict() if k.startswith(("conv1.", "bn1.", "layer1.", "layer2.", "layer3."))}


@pytest.mark.parametrize("name, layers", [("wide_resnet50_2", ("layer2", "layer3")),
                                          ("resnext50_32x4d", ("layer2", "layer3")),
                                          ("efficientnet_b0", ("features.3", "features.5")),
                                          ("convnext_tiny", ("features.3", "features.5")),
                                          ("vit_b_16", ("encoder.layers.encoder_layer_5",
                                                        "encoder.layers.encoder_layer_8"))])
def test_family_default_layers(name, layers):
    from simsearch.embed.feature_extractor import default_layers
    assert default_layers(name) == layers


def test_other_families_and_bad_node_names_ask_for_layers():
    with pytest.raises(UnknownComponentError, match="no default feature layers") as info:
        BackboneEmbedder("mobilenet_v3_small", pretrained=False, image_size=64)
    assert info.value.parameter == "layers"
    small = BackboneEmbedder("mobilenet_v3_small", layers=["features.3", "features.8"], pretrained=False,
                             image_size=64, device="cpu")
    assert small.embed([np.zeros((64, 64, 3), np.uint8)]).patches.shape == (1, 8, 8, small.dim)
    with pytest.raises(UnknownComponentError, match="layer9") as info:
        BackboneEmbedder("resnet18", layers=["layer9"], pretrained=False, image_size=64)
    assert info.value.parameter == "layers"


def test_vision_transformer_tokens_become_the_patch_grid():
    from simsearch.errors import InputError
    embedder = BackboneEmbedder("vit_b_16", pretrained=False, device="cpu")
    out = embedder.embed([np.zeros((50, 60, 3), np.uint8)])
    assert out.patches.shape == (1, 14, 14, 2 * 768) and out.image.shape == (1, 2 * 768)
    # only the blocks up to the deepest chosen one are kept, run and hashed
    assert not any(k.startswith(("heads.", "encoder.ln.", "encoder.layers.encoder_layer_9."))
                   for k in embedder.model.body.state_dict())
    with pytest.raises(InputError, match="224") as info:
        BackboneEmbedder("vit_b_16", pretrained=False, image_size=128)
    assert info.value.parameter == "image_size"


def test_partial_file_for_another_family_names_missing_tensors(tmp_path):
    import torchvision
    torch.manual_seed(1)
    state = torchvision.models.efficientnet_b0(weights=None).state_dict()
    kept = {k: v for k, v in state.items() if not k.startswith(("features.6", "features.7", "features.8",
                                                                 "classifier"))}
    torch.save(kept, tmp_path / "front.pth")
    embedder = BackboneEmbedder("efficientnet_b0", image_size=64, weights=tmp_path / "front.pth", device="cpu")
    assert embedder.config["weights_source"].startswith("file:")
    torch.save({k: v for k, v in kept.items() if not k.startswith("features.5.2")}, tmp_path / "less.pth")
    with pytest.raises(WeightsError, match="features.5.2"):
        BackboneEmbedder("efficientnet_b0", image_size=64, weights=tmp_path / "less.pth", device="cpu")


def test_build_index_takes_layers(part_folder, tmp_path):
    import json

    from typer.testing import CliRunner

    from simsearch.cli.main import app
    args = ["build-index", str(part_folder / "good"), "--out", str(tmp_path / "idx"), "--no-pretrained",
            "--image-size", "64", "--device", "cpu", "--json"]
    result = CliRunner().invoke(app, args + ["--layers", "layer1, layer2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["embedder"]["layers"] == ["layer1", "layer2"] and summary["dim"] == 64 + 128
    result = CliRunner().invoke(app, args + ["--backbone", "mobilenet_v3_small"])
    assert result.exit_code == UnknownComponentError.exit_code and "--layers" in result.stderr


def _parts(count=5):
    rng = np.random.default_rng(3)
    return [rng.integers(0, 255, (40 + 7 * n, 90 - 5 * n, 3), dtype=np.uint8) for n in range(count)]


def test_prepared_images_give_the_same_vectors(small_embedder):
    images = _parts()
    direct = small_embedder.embed(images)
    prepared = small_embedder.embed([small_embedder.prepare(image) for image in images])
    assert all(small_embedder.prepare(image).shape == (64, 64, 3) for image in images)
    assert np.array_equal(direct.image, prepared.image) and np.array_equal(direct.patches, prepared.patches)


def test_loader_threads_give_the_same_vectors_in_the_same_order(small_embedder):
    from simsearch.embed.base import concat_embeddings, iter_embedded

    images = _parts(9)
    in_thread = concat_embeddings([e for _, e in iter_embedded(small_embedder, images, workers=0)])
    threaded = concat_embeddings([e for _, e in iter_embedded(small_embedder, images, workers=3)])
    assert np.array_equal(in_thread.patches, threaded.patches)
    assert np.array_equal(in_thread.image, small_embedder.embed(images).image)


def _cosine(a, b):
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_channels_last_and_bfloat16_keep_the_vectors_and_the_fingerprint(small_embedder):
    images = _parts()
    reference = small_embedder.embed(images)
    last = BackboneEmbedder("resnet18", image_size=64, pretrained=False, device="cpu", channels_last=True)
    assert last.model.body.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert np.allclose(last.embed(images).patches, reference.patches, atol=1e-4)
    half = BackboneEmbedder("resnet18", image_size=64, pretrained=False, device="cpu", precision="bfloat16")
    vectors = half.embed(images)
    assert vectors.patches.dtype == np.float32 and not np.array_equal(vectors.patches, reference.patches)
    assert _cosine(vectors.patches, reference.patches).min() > 0.98  # bf16 rounding, not other vectors
    assert half.fingerprint == last.fingerprint == small_embedder.fingerprint  # an index opens with either
    reopened = embedder_from_config(small_embedder.config, device="cpu", precision="bfloat16", channels_last=True)
    assert reopened.precision == "bfloat16" and reopened.channels_last  # runtime options, as load(...) passes them
