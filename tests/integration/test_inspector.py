import contextlib

import numpy as np
import pytest

from simsearch.errors import InputError
from simsearch.inspector import Inspector
from tests.conftest import part_image


def test_fit_score_predict_on_arrays(small_embedder):
    rng = np.random.default_rng(0)
    good = [part_image(rng) for _ in range(10)]
    inspector = Inspector(small_embedder, mode="patch", coreset_ratio=0.5).fit(good)
    assert inspector.fit(good) is inspector and inspector.index_.counts()["good"] == 10
    test = [part_image(rng) for _ in range(4)] + [part_image(rng, defect=True) for _ in range(4)]
    scores = inspector.score_samples(test)
    assert scores[4:].min() > scores[:4].max()
    with pytest.raises(InputError, match="calibrate"):
        inspector.predict(test)
    inspector.index_.threshold = {"value": float((scores[3] + scores[4]) / 2), "low": float(scores.min()),
                                  "high": float(scores.max()), "policy": "test"}
    assert inspector.predict(test).tolist() == [0] * 4 + [1] * 4
    assert (inspector.decision_function(test)[4:] > 0).all()


def test_image_mode_and_defect_neighbours(small_embedder, part_folder):
    inspector = Inspector(small_embedder, mode="image", k=2).fit(part_folder / "good")
    inspector.add(part_folder / "defect", "defect", defect_type="spot")
    result = inspector.score([part_folder / "defect" / "spot" / "00.png"])[0]
    assert result.nearest_defect is not None and result.nearest_defect.defect_type == "spot"
    assert result.nearest_defect.distance < 1e-3  # it is itself an exemplar
    assert result.to_dict()["nearest"][0]["label"] == "good"


def test_save_load_scores_the_same(small_embedder, part_folder, tmp_path):
    inspector = Inspector(small_embedder).fit(part_folder / "good")
    inspector.save(tmp_path / "idx")
    loaded = Inspector.load(tmp_path / "idx", device="cpu")
    images = sorted((part_folder / "defect").rglob("*.png"))
    assert np.allclose(loaded.score_samples(images), inspector.score_samples(images), atol=1e-4)


def test_add_is_all_or_nothing(small_embedder, part_folder, tmp_path):
    from simsearch.data.images import ImageError
    inspector = Inspector(small_embedder).fit(part_folder / "good")
    before = len(inspector.index_)
    (tmp_path / "bad.png").write_bytes(b"broken")
    with pytest.raises(ImageError):
        inspector.add([tmp_path / "bad.png"])
    assert len(inspector.index_) == before


def test_maps_are_made_only_where_boxes_or_readers_ask(small_embedder):
    from simsearch.score.maps import anomaly_map

    rng = np.random.default_rng(1)
    inspector = Inspector(small_embedder, coreset_ratio=0.5).fit([part_image(rng) for _ in range(8)])
    test = [part_image(rng), part_image(rng, defect=True)]
    scores = inspector.score_samples(test)
    inspector.index_.threshold = {"value": float(scores.mean()), "low": float(scores.min()),
                                  "high": float(scores.max()), "pixel": 0.0, "policy": "test"}
    passed, rejected = inspector.score(test)
    assert not passed.is_anomaly and rejected.is_anomaly
    assert passed._anomaly_map is None and not passed.boxes  # a pass costs no map
    assert rejected._anomaly_map is not None and rejected.boxes  # a reject's boxes come from its map
    assert np.array_equal(passed.anomaly_map, anomaly_map(passed.patch_map))  # made when read


def test_overlapped_scoring_keeps_order_and_scores(small_embedder):
    """With loader threads, a batch's search runs beside the next batch's network: same results, same order."""
    rng = np.random.default_rng(3)
    inspector = Inspector(small_embedder, coreset_ratio=0.5).fit([part_image(rng) for _ in range(8)])
    test = [part_image(rng, defect=bool(i % 3 == 0)) for i in range(3 * small_embedder.batch_size + 1)]
    inspector.workers = 0
    serial = [r.score for r in inspector.iter_score(test)]
    inspector.workers = 2
    overlapped = [r.score for r in inspector.iter_score(test)]
    assert overlapped == serial and len(serial) == len(test)


def test_maps_needed_scores_the_same_and_maps_only_the_rejects(small_embedder):
    """maps="needed" (what `simsearch score` asks without --heatmap): the same scores and verdicts, the rejects
    with the same maps and boxes as maps="all", the passes with no map at all."""
    rng = np.random.default_rng(2)
    inspector = Inspector(small_embedder, coreset_ratio=0.5).fit([part_image(rng) for _ in range(8)])
    test = [part_image(rng, defect=bool(i % 2)) for i in range(6)]
    scores = inspector.score_samples(test)
    inspector.index_.threshold = {"value": float(np.median(scores)), "low": float(scores.min()),
                                  "high": float(scores.max()), "pixel": float(np.median(scores)), "policy": "test"}
    every, needed = inspector.score(test), inspector.score(test, maps="needed")
    np.testing.assert_allclose([r.score for r in needed], [r.score for r in every], rtol=1e-5)
    assert [r.is_anomaly for r in needed] == [r.is_anomaly for r in every] and any(r.is_anomaly for r in every)
    for full, lean in zip(every, needed):
        if full.is_anomaly:
            # searched in another batch: the same distances to float rounding (|q|^2 + |b|^2 - 2 q.b)
            np.testing.assert_allclose(lean.patch_map, full.patch_map, rtol=1e-3)
            assert lean.boxes and len(lean.boxes) == len(full.boxes)
            np.testing.assert_allclose([b.score for b in lean.boxes], [b.score for b in full.boxes], rtol=1e-3)
        else:
            assert lean.patch_map is None and lean.anomaly_map is None and not lean.boxes
    with pytest.raises(InputError, match="maps"):
        inspector.score(test, maps="some")


def test_a_saved_index_keeps_a_compiled_embedder_that_scores_the_same(small_embedder, part_folder, tmp_path):
    from simsearch.embed.compiled import CompiledEmbedder

    Inspector(small_embedder).fit(part_folder / "good").save(tmp_path / "idx", compile=True)
    compiled = Inspector.load(tmp_path / "idx", device="cpu")
    plain = Inspector.load(tmp_path / "idx", device="cpu", compiled=False)
    assert isinstance(compiled.embedder, CompiledEmbedder) and not isinstance(plain.embedder, CompiledEmbedder)
    assert compiled.embedder.fingerprint == plain.embedder.fingerprint == compiled.index_.fingerprint
    images = sorted(part_folder.rglob("*.png"))
    ours, theirs = compiled.score_samples(images), plain.score_samples(images)
    # float32 rounding of near-zero distances (good parts among exemplars), far below the scores' spread
    assert np.abs(ours - theirs).max() <= 1e-3 * theirs.max()
    # a weights file named now, or another precision, is torch's to run
    assert not isinstance(Inspector.load(tmp_path / "idx", precision="bfloat16").embedder, CompiledEmbedder)
    with pytest.raises(InputError, match="CPU in float32"):
        Inspector.load(tmp_path / "idx", compiled=True, precision="bfloat16")
    # later writes keep the copy without making it again
    compiled.add_saved(tmp_path / "idx", part_folder / "defect", "defect", defect_type="spot")
    assert isinstance(Inspector.load(tmp_path / "idx", device="cpu").embedder, CompiledEmbedder)


def test_export_is_explicit_and_later_writes_keep_the_copy(small_embedder, part_folder, tmp_path):
    from simsearch.embed.compiled import CompiledEmbedder
    from simsearch.inspector import export_compiled

    Inspector(small_embedder).fit(part_folder / "good").save(tmp_path / "idx")  # no compile=True: no copy
    assert not list((tmp_path / "idx").glob("*.onnx"))
    loaded = Inspector.load(tmp_path / "idx", device="cpu")
    assert not isinstance(loaded.embedder, CompiledEmbedder)
    with pytest.raises(InputError, match="no compiled embedder"):
        Inspector.load(tmp_path / "idx", compiled=True)
    loaded.index_.threshold = {"value": 1.0, "low": 0.0, "high": 2.0, "policy": "test"}
    loaded.save_threshold(tmp_path / "idx")  # calibrating exports nothing
    loaded.add_saved(tmp_path / "idx", part_folder / "defect", "defect", defect_type="spot")  # nor does adding
    assert not list((tmp_path / "idx").glob("*.onnx"))
    record = export_compiled(tmp_path / "idx")  # `simsearch export`
    assert record["fingerprint"] == loaded.index_.fingerprint and len(list((tmp_path / "idx").glob("*.onnx"))) == 1
    exported = Inspector.load(tmp_path / "idx", device="cpu")
    assert isinstance(exported.embedder, CompiledEmbedder)
    assert exported.index_.counts() == loaded.index_.counts() and exported.threshold_.value == 1.0
    assert export_compiled(tmp_path / "idx") == record  # a second export keeps the copy it has
    # the copy depends on the embedder alone: adding and calibrating keep it in step with the index
    exported.add_saved(tmp_path / "idx", part_folder / "good" / "00.png", allow_duplicates=True)
    exported.save_threshold(tmp_path / "idx")
    assert isinstance(Inspector.load(tmp_path / "idx", device="cpu").embedder, CompiledEmbedder)


def test_a_damaged_compiled_embedder_falls_back_to_torch(small_embedder, part_folder, tmp_path, caplog):
    import json

    from simsearch.embed.compiled import CompiledEmbedder

    Inspector(small_embedder).fit(part_folder / "good").save(tmp_path / "idx", compile=True)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    manifest["artifacts"]["embedder"]["grid"] = [3, 3]  # the model's outputs no longer match its record
    (tmp_path / "idx" / "manifest.json").write_text(json.dumps(manifest))
    loaded = Inspector.load(tmp_path / "idx", device="cpu")
    assert not isinstance(loaded.embedder, CompiledEmbedder) and "running torch" in caplog.text
    with pytest.raises(InputError, match="cannot run"):
        Inspector.load(tmp_path / "idx", compiled=True)


def test_the_compiled_copy_is_kept_across_saves_without_rewriting(small_embedder, part_folder, tmp_path):
    Inspector(small_embedder).fit(part_folder / "good").save(tmp_path / "idx", compile=True)
    first = next((tmp_path / "idx").glob("embedder-*.onnx"))
    inode = first.stat().st_ino
    loaded = Inspector.load(tmp_path / "idx", device="cpu")
    loaded.add_saved(tmp_path / "idx", part_folder / "defect", "defect", defect_type="spot")
    loaded.save(tmp_path / "idx")  # the index add_saved returned, saved again
    kept = list((tmp_path / "idx").glob("embedder-*.onnx"))
    assert len(kept) == 1 and kept[0] != first and kept[0].stat().st_ino == inode
    assert len(Inspector.load(tmp_path / "idx", device="cpu").score_samples([part_folder / "good" / "00.png"])) == 1


def test_build_index_describes_what_it_built_and_refuses_a_replacement_before_embedding(part_folder, tmp_path):
    from simsearch.data.callbacks import Callbacks
    from simsearch.data.datasets import typed_defect_samples
    from simsearch.errors import ConflictError
    from simsearch.index import ExemplarIndex
    from simsearch.inspector import build_index
    from simsearch.runtime import Runtime

    good = sorted((part_folder / "good").glob("*.png"))
    defects = typed_defect_samples([part_folder / "defect"])
    stages = []

    @contextlib.contextmanager
    def progress(stage, total):
        done = []
        yield done.append
        stages.append((stage, total, sum(done)))

    out = tmp_path / "index"
    summary = build_index(good, out, defects, pretrained=False, image_size=64, aspect="square", compile=False,
                          runtime=Runtime.of(device="cpu"), callbacks=Callbacks(stage=progress))
    assert (summary["good"], summary["defect"], summary["defect_types"]) == (12, 4, {"spot": 4})
    assert (summary["mode"], summary["embedder"]["image_size"]) == ("open-set", 64)
    assert summary["mode_reason"] and summary["bytes"] > 0
    assert stages == [("embedding", 16, 16)]
    assert ExemplarIndex.load(out).counts()["good"] == 12
    stages.clear()
    with pytest.raises(ConflictError):
        build_index(good, out, mode="patch", pretrained=False, image_size=64, aspect="square", compile=False,
                    callbacks=Callbacks(stage=progress))
    assert stages == []  # refused before any image was embedded
