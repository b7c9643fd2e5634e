"""Every registered embedder kind passes the same checks: config round trip, stable fingerprint, vector shapes."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from simsearch.embed import create_embedder, embedder_from_config
from simsearch.embed.registry import embedder_class, embedder_kinds

# kind -> cases: (id, function(tmp folder) -> (spec, build options)). A newly registered kind fails
# `test_every_kind_has_a_case` until it gets one here.


def _triplet_ae(folder):
    from simsearch.embed.checkpoint import write_checkpoint
    from simsearch.embed.triplet_ae import AutoencoderConfig
    config = AutoencoderConfig(image_size=32, embedding_dim=8, channels=1, widths=[8, 16])
    torch.manual_seed(0)
    write_checkpoint(folder / "ae.pt", "triplet-ae", asdict(config), config.build().state_dict())
    return f"triplet-ae:{folder / 'ae.pt'}", {}


def _triplet_head(folder):
    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.embed.checkpoint import write_checkpoint
    from simsearch.embed.triplet_head import HeadConfig
    backbone = BackboneEmbedder("resnet18", image_size=64, pretrained=False, device="cpu")
    config = HeadConfig(backbone=backbone.config, in_dim=backbone.dim, embedding_dim=16, hidden_dim=32)
    torch.manual_seed(0)
    write_checkpoint(folder / "head.pt", "triplet-head", asdict(config), config.build().state_dict())
    return f"triplet-head:{folder / 'head.pt'}", {}


def _backbone(name, image_size=64):
    return lambda folder: (f"backbone:{name}", {"pretrained": False, "image_size": image_size})


CASES = {
    "backbone": [("resnet18", _backbone("resnet18")), ("efficientnet_b0", _backbone("efficientnet_b0")),
                 ("convnext_tiny", _backbone("convnext_tiny")), ("vit_b_16", _backbone("vit_b_16", 224))],
    "triplet-ae": [("checkpoint", _triplet_ae)],
    "triplet-head": [("checkpoint", _triplet_head)],
}
PARAMS = [pytest.param(kind, make, id=f"{kind}-{name}") for kind in embedder_kinds()
          for name, make in CASES.get(kind, [])]
IMAGES = [np.random.default_rng(0).integers(0, 256, (48, 56, 3), dtype=np.uint8),
          np.full((70, 40, 3), 128, np.uint8)]


def test_every_kind_has_a_case():
    assert set(embedder_kinds()) <= set(CASES), "add a contract case for each new embedder kind"


@pytest.mark.parametrize("kind, make", PARAMS)
def test_embedder_contract(kind, make, tmp_path):
    spec, options = make(tmp_path)
    embedder = create_embedder(spec, device="cpu", batch_size=2, **options)
    assert type(embedder) is embedder_class(kind) and type(embedder).kind == kind
    config = json.loads(json.dumps(embedder.config))  # JSON-able, as the index manifest keeps it
    assert config["kind"] == kind

    again = create_embedder(spec, device="cpu", batch_size=2, **options)
    assert again.fingerprint == embedder.fingerprint, "two builds of the same spec must agree"
    rebuilt = embedder_from_config(config, device="cpu")
    assert rebuilt.fingerprint == embedder.fingerprint and rebuilt.dim == embedder.dim

    out = embedder.embed(IMAGES)
    assert out.image.dtype == np.float32 and out.image.shape == (len(IMAGES), embedder.dim)
    assert np.isfinite(out.image).all()
    if embedder.supports_patches:
        assert out.patches is not None and out.patches.dtype == np.float32
        assert out.patches.ndim == 4 and out.patches.shape[0] == len(IMAGES)
        assert out.patches.shape[-1] == embedder.dim
    else:
        assert out.patches is None
    np.testing.assert_allclose(rebuilt.embed(IMAGES).image, out.image, rtol=1e-4, atol=1e-5)

    # an inference module is a promise: the compiled copy (ONNX Runtime) gives the same vectors
    if embedder.inference_module() is not None:
        from simsearch.embed.compiled import CompiledEmbedder, compile_embedder
        found = compile_embedder(embedder)
        assert found is not None, "an embedder with an inference module must compile"
        copy = CompiledEmbedder(*found, config)
        assert copy.fingerprint == embedder.fingerprint and copy.dim == embedder.dim
        compiled = copy.embed(IMAGES)
        for ours, theirs in ((compiled.image, out.image), (compiled.patches, out.patches)):
            assert ours.shape == theirs.shape and np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()
