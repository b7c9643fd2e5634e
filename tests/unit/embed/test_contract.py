"""Every registered embedder kind passes the same checks: config round trip, stable fingerprint, vector shapes."""

from __future__ import annotations

from dataclasses import asdict

import torch

from simsearch.embed.registry import embedder_kinds

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


def test_every_kind_has_a_case():
    assert set(embedder_kinds()) <= set(CASES), "add a contract case for each new embedder kind"
