"""Backbone probe: unavailable backbones skipped with a note, embeddings cached once, save/load round trip."""

import pytest

from simsearch.baselines.persist import load_baseline
from simsearch.baselines.probe import BackboneProbe
from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import discover_samples


def test_probe_skips_unavailable_backbones_caches_and_round_trips(part_folder, tmp_path, monkeypatch):
    import simsearch.embed.pooled as pooled
    from simsearch.embed.weights import WeightsError

    def unavailable(name):
        raise WeightsError(f"pretrained weights for {name} are not cached")
    monkeypatch.setattr(pooled, "torchvision_state_dict", unavailable)  # no network in tests
    samples = discover_samples(part_folder)
    probe = BackboneProbe(("mobilenet_v3_small", "resnet18"), image_size=64, pretrained=False,
                          cache_dir=tmp_path / "cache", device="cpu")
    computed = []
    probe.fit(samples, Callbacks(progress=computed.append))
    assert probe.backbone_ == "resnet18" and sum(computed) == len(samples)
    assert any("mobilenet_v3_small" in note for note in probe.notes_)
    assert [c["backbone"] for c in probe.candidates_] == ["resnet18"]
    assert len(list((tmp_path / "cache").glob("resnet18-*.npz"))) == 1

    computed.clear()
    BackboneProbe(("resnet18",), image_size=64, pretrained=False, cache_dir=tmp_path / "cache",
                  device="cpu").fit(samples, Callbacks(progress=computed.append))
    assert sum(computed) == 0  # every vector came from the cache

    probe.save(tmp_path / "probe")
    loaded = load_baseline(tmp_path / "probe", device="cpu")
    paths = [s.path for s in samples[:5]]
    before = [r.score for r in probe.score(paths)]
    assert [r.score for r in loaded.score(paths)] == pytest.approx(before, abs=1e-6)


def test_probe_with_no_usable_backbone_is_an_error(part_folder, monkeypatch):
    import simsearch.embed.pooled as pooled
    from simsearch.embed.weights import WeightsError

    monkeypatch.setattr(pooled, "torchvision_state_dict",
                        lambda name: (_ for _ in ()).throw(WeightsError("not cached")))
    with pytest.raises(WeightsError, match="no backbone"):
        BackboneProbe(("mobilenet_v3_small",), cache_dir=None).fit(discover_samples(part_folder))
