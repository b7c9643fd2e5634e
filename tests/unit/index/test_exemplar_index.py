import numpy as np
import pytest

from simsearch.errors import ConflictError, NotFoundError
from simsearch.index import ExemplarIndex, IndexMismatchError, NewExemplar, StorageError, storage

DIM = 8


def _clusters(seed=0, n=40):
    rng = np.random.default_rng(seed)
    good = rng.normal(0, 1, (n, DIM)).astype(np.float32)
    outliers = rng.normal(6, 1, (5, DIM)).astype(np.float32)
    return good, outliers


def _image_index(good, mode="image", k=3):
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp-a", mode=mode, k=k)
    index.add([NewExemplar(f"good/{i}.png", "good", None, f"h{i}") for i in range(len(good))], good)
    return index


def test_add_search_remove_by_stable_id():
    good, outliers = _clusters()
    index = _image_index(good)
    distances, ids = index.nearest_good(good[:3], 1)
    assert ids[:, 0].tolist() == [0, 1, 2] and np.allclose(distances, 0, atol=1e-3)
    index.remove([1])
    _, ids = index.nearest_good(good[1:2], 1)
    assert ids[0, 0] != 1 and 1 not in index.exemplars
    new_ids = index.add([NewExemplar("defect/x.png", "defect", "scratch", "hx")], outliers[:1])
    assert new_ids == [len(good)]  # ids are never reused
    _, defect_ids = index.nearest_defect(outliers[:1], 1)
    assert index.exemplars[int(defect_ids[0, 0])].defect_type == "scratch"
    with pytest.raises(NotFoundError, match="no exemplar with id 999"):
        index.remove([999])


def test_scores_rank_planted_outliers_above_inliers():
    from simsearch.embed.base import Embeddings
    from simsearch.score.results import score_embeddings

    good, outliers = _clusters()
    index = _image_index(good[:30])
    held_out = good[30:]
    results = score_embeddings(index, Embeddings(np.concatenate([held_out, outliers])))
    scores = np.array([r.score for r in results])
    assert scores[len(held_out):].min() > scores[:len(held_out)].max()
    assert results[0].nearest[0].label == "good" and len(results[0].nearest) == 3


def test_save_load_round_trip(tmp_path):
    good, _ = _clusters()
    index = _image_index(good)
    index.threshold = {"value": 1.5, "low": 0.5, "high": 3.0, "policy": "f1"}
    index.save(tmp_path / "idx")
    loaded = ExemplarIndex.load(tmp_path / "idx", fingerprint="fp-a")
    assert loaded.exemplars == index.exemplars and loaded.threshold == index.threshold
    assert np.array_equal(loaded.nearest_good(good[:5], 2)[1], index.nearest_good(good[:5], 2)[1])
    assert loaded.next_id == index.next_id


def test_fingerprint_mismatch_is_refused(tmp_path):
    good, _ = _clusters()
    _image_index(good).save(tmp_path / "idx")
    with pytest.raises(IndexMismatchError, match="another embedder"):
        ExemplarIndex.load(tmp_path / "idx", fingerprint="fp-b")


def test_newer_format_is_refused(tmp_path):
    import json
    good, _ = _clusters()
    _image_index(good).save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx/manifest.json").read_text())
    manifest["format_version"] = 99
    (tmp_path / "idx/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="newer"):
        ExemplarIndex.load(tmp_path / "idx")


def test_exception_during_save_leaves_previous_index_readable(tmp_path, monkeypatch):
    good, outliers = _clusters()
    index = _image_index(good)
    index.save(tmp_path / "idx")
    index.add([NewExemplar("more.png")], outliers[:1])

    def crash(path, content):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("simsearch.index.storage._write_file", crash)
    with pytest.raises(StorageError, match="No space left"):
        index.save(tmp_path / "idx")
    monkeypatch.undo()
    reloaded = ExemplarIndex.load(tmp_path / "idx")
    assert len(reloaded) == len(good)  # the old index, whole
    reloaded.add([NewExemplar("more.png")], outliers[:1])
    reloaded.save(tmp_path / "idx")  # and the next save cleans up and works
    assert len(ExemplarIndex.load(tmp_path / "idx")) == len(good) + 1
    assert len([p for p in (tmp_path / "idx").iterdir() if p.name.endswith(".tmp")]) == 0


def test_refuses_to_save_over_a_folder_that_is_not_an_index(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"x")
    good, _ = _clusters()
    with pytest.raises(StorageError, match="not a simsearch index"):
        _image_index(good).save(tmp_path / "photos")
    assert (tmp_path / "photos" / "holiday.jpg").exists()


def test_missing_index_folder_says_how_to_build_one(tmp_path):
    with pytest.raises(StorageError, match="build-index"):
        storage.read_manifest(tmp_path / "nowhere")


def test_remove_refuses_the_last_good_exemplar_and_takes_repeated_ids_once():
    good, outliers = _clusters(n=3)
    index = _image_index(good, k=1)  # k=3 would refuse removing below 3 good
    index.add([NewExemplar("d.png", "defect", "dent")], outliers[:1])
    assert index.remove([0, 0, 1]) == [0, 1]
    assert index.counts() == {"good": 1, "defect": 1}  # the image mode keeps no other store
    with pytest.raises(ConflictError, match="last good exemplar"):
        index.remove([2, 3])
    assert index.counts() == {"good": 1, "defect": 1}  # nothing changed
    with pytest.raises(NotFoundError):
        index.remove([3, 77])
    assert 3 in index.exemplars
    assert index.remove([3]) == [3]


def test_describe_holds_counts_types_and_the_time_of_the_last_save(tmp_path):
    good, outliers = _clusters(n=4)
    index = _image_index(good)
    index.add([NewExemplar("d.png", "defect", "dent")], outliers[:1])
    described = index.describe()
    assert described["counts"] == {"good": 4, "defect": 1}
    assert described["defect_types"] == {"dent": 1} and described["mode"] == "image" and described["k"] == 3
    assert described["coreset_ratio"] is None and described["patch_grid"] is None  # image mode has no bank
    assert described["updated"] is None and described["bytes"] is None and described["generation"] == 0
    index.save(tmp_path / "idx")
    saved = ExemplarIndex.load(tmp_path / "idx").describe()
    assert saved["updated"] == index.updated is not None and saved["generation"] == 1
    on_disk = sum(p.stat().st_size for p in (tmp_path / "idx").iterdir())
    assert saved["bytes"] == on_disk == index.describe()["bytes"]
    patch = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="patch", coreset_ratio=0.5).describe()
    assert patch["coreset_ratio"] == 0.5
