"""Index kinds: every kind keeps ids through add/remove/save/load, reaches a recall floor against exact search
on clustered vectors, is chosen by size under auto, and a wrong kind is a one-line error."""

import faiss
import numpy as np
import pytest

from simsearch.errors import InputError
from simsearch.index import kinds
from simsearch.index.exemplar_index import ExemplarIndex, NewExemplar
from simsearch.index.vectors import VectorStore

DIM = 16
# Small kinds of each family, trainable on the few thousand vectors a unit test can afford.
KINDS = ["Flat", "HNSW16", "IVF16,Flat", "IVF16_HNSW8,Flat", "IVF16,PQ8x4", "IVF16,SQ8"]
RECALL_FLOOR = {"Flat": 1.0, "HNSW16": 0.9, "IVF16,Flat": 0.9, "IVF16_HNSW8,Flat": 0.9, "IVF16,PQ8x4": 0.3,
                "IVF16,SQ8": 0.9}  # PQ4x4 keeps 2 bytes of 64: its floor says it is far better than chance


def clustered(n, seed=0, clusters=24, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((clusters, DIM)).astype(np.float32) * 6
    return (centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, DIM))).astype(np.float32)


def _store(kind, n=3000):
    vectors = clustered(n)
    ids = np.arange(n, dtype=np.int64) * 5 + 1000  # not positions: the ids must travel with the vectors
    store = VectorStore(DIM)
    store.add(vectors, ids)
    store.apply_kind(kind)
    return store, vectors, ids


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_round_trips_add_remove_save_load(kind):
    store, vectors, ids = _store(kind)
    assert store.kind == kind and store.record.requested == kind and store.record.trained_on == len(ids)
    assert sorted(store.ids().tolist()) == sorted(ids.tolist())

    gone = ids[:100]
    assert store.remove_ids(gone) == 100 and len(store) == len(ids) - 100
    assert store.remove_id_range(int(ids[100]), int(ids[110])) == 10
    _, found = store.search(vectors[:200], 5)
    assert not np.isin(found, ids[:110]).any()

    fresh = clustered(50, seed=7)
    fresh_ids = np.arange(50, dtype=np.int64) + 10 ** 9
    store.add(fresh, fresh_ids)
    _, found = store.search(fresh, 5)
    assert (found[:, 0] == fresh_ids).mean() >= (1.0 if kind == "Flat" else 0.2 if "PQ" in kind else 0.9)
    assert (found == fresh_ids[:, None]).any(axis=1).mean() >= 0.8  # a new vector is found (lossy codes: nearby)

    loaded = VectorStore.from_bytes(store.to_bytes(), store.record)
    assert type(loaded.index) is type(store.index) and loaded.kind == kind
    queries = clustered(100, seed=3)
    np.testing.assert_array_equal(loaded.search(queries, 3)[1], store.search(queries, 3)[1])
    excluded = store.search(fresh[:1], 3, exclude_range=(int(fresh_ids[0]), int(fresh_ids[0]) + 1))[1]
    assert fresh_ids[0] not in excluded and (excluded >= 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_recall_against_exact_on_clustered_vectors_is_above_the_floor(kind):
    store, vectors, ids = _store(kind)
    queries = clustered(300, seed=11)  # not in the store: out of sample, as patches of a new image are
    exact_d, _ = faiss.knn(queries, vectors, 10)
    _, found = store.search(queries, 10)
    true_d = np.sort(kinds.true_distances(queries, found, vectors, ids), axis=1)  # not the codes' estimates
    assert kinds.recall(exact_d, true_d, 1) >= RECALL_FLOOR[kind]
    assert kinds.recall(exact_d, true_d, 10) >= RECALL_FLOOR[kind] - 0.1
    if kind in ("HNSW16", "IVF16,Flat", "IVF16_HNSW8,Flat"):  # the depth was raised until recall@1 on its own
        assert store.record.recall_at_1 >= kinds.RECALL_TARGET  # vectors reached the target
    assert store.record.recall_queries == (0 if kind == "Flat" else kinds.RECALL_QUERIES)


def test_build_lets_go_of_a_handed_over_training_sample_before_it_fills_the_index():
    import weakref

    vectors = clustered(2000)
    held = []

    def sample():  # made for the call and handed over: the caller keeps only a weak reference
        made = clustered(1000, seed=5)
        held.append(weakref.ref(made))
        return made

    alive_while_filling = []

    def chunks():  # the add of a large bank: the training sample must not be held beside it
        alive_while_filling.append(held[0]() is not None)
        yield vectors, np.arange(len(vectors), dtype=np.int64)

    index = kinds.build("IVF16,SQ8", DIM, sample(), chunks())
    assert index.ntotal == len(vectors)
    assert alive_while_filling == [False]


def test_recall_counts_ties_by_distance_and_a_miss_as_a_miss():
    exact = np.array([[1.0, 2.0], [1.0, 2.0]], np.float32)
    assert kinds.recall(exact, np.array([[1.0, 2.0], [1.0, 2.0]], np.float32), 2) == 1.0
    assert kinds.recall(exact, np.array([[1.0, 5.0], [3.0, 5.0]], np.float32), 1) == 0.5
    assert kinds.recall(exact, np.array([[1.0, 5.0], [3.0, 5.0]], np.float32), 2) == 0.25


def test_auto_picks_exact_then_ivf_then_ivf_pq_by_size():
    assert kinds.auto_kind(10_000, 384) == "Flat"
    assert kinds.auto_kind(kinds.AUTO_EXACT_MAX, 384) == "Flat"
    assert kinds.auto_kind(kinds.AUTO_EXACT_MAX + 1, 384).startswith("IVF")
    assert kinds.auto_kind(1_000_000, 384) == "IVF4096_HNSW32,SQ8"
    assert kinds.auto_kind(10_000_000, 384) == "IVF16384_HNSW32,PQ48"
    # never more lists than the vectors can train (39 a list)
    assert kinds.training_minimum(kinds.auto_kind(kinds.AUTO_EXACT_MAX + 1, 384), 384) <= kinds.AUTO_EXACT_MAX + 1


def test_auto_store_switches_to_ivf_past_the_exact_limit_and_an_explicit_kind_waits_for_enough_vectors(monkeypatch):
    monkeypatch.setattr(kinds, "AUTO_EXACT_MAX", 1000)
    small, _, _ = _store("auto", n=800)
    assert small.kind == "Flat" and small.record.requested == "auto"
    large, vectors, _ = _store("auto", n=3000)
    assert large.kind.startswith("IVF") and large.kind.endswith(",SQ8")
    assert kinds.ivf_of(large.index).nprobe == large.record.nprobe
    # the 8-bit codes' distances are what scores are made of: close to the exact nearest distances
    queries = clustered(200, seed=12)
    exact = np.sqrt(faiss.knn(queries, vectors, 1)[0][:, 0])
    found = large.search(queries, 1)[0][:, 0]
    assert np.median(np.abs(found - exact) / exact) < 0.01
    waiting, _, _ = _store("IVF64,Flat", n=1000)  # 64 lists need 39 * 64 = 2496 vectors
    assert waiting.kind == "Flat" and "needs 2496" in waiting.record.note


def test_exemplar_index_saves_the_trained_kind_and_loads_it_without_rebuilding(tmp_path, monkeypatch):
    vectors = clustered(1200)
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="image", index_kind=["good=IVF16,Flat"])
    ids = index.add([NewExemplar(f"g{n}.png") for n in range(len(vectors))], vectors)
    index.apply_index_kinds()
    assert index.good.kind == "IVF16,Flat" and index.defect.kind == "Flat"
    index.save(tmp_path / "idx")

    def no_training(*args, **kwargs):
        raise AssertionError("a load must not train or rebuild anything")

    monkeypatch.setattr(kinds, "build", no_training)
    monkeypatch.setattr(kinds, "build_store_index", no_training)
    loaded = ExemplarIndex.load(tmp_path / "idx")
    assert isinstance(loaded.good.index, faiss.IndexIVFFlat)
    assert loaded.good.record == index.good.record and loaded.index_kinds["good"] == "IVF16,Flat"
    described = loaded.describe()["index_kinds"]["good"]
    assert described["kind"] == "IVF16,Flat" and described["recall_at_1"] >= kinds.RECALL_TARGET
    assert "recall@1" in described["summary"] and described["vectors"] == 1200
    monkeypatch.undo()

    loaded.remove(ids[:10])
    loaded.save(tmp_path / "idx")
    again = ExemplarIndex.load(tmp_path / "idx")
    _, found = again.nearest_good(vectors[:10], 3)
    assert not np.isin(found, ids[:10]).any() and len(again.good) == 1190
    _, found = again.nearest_good(vectors[20:21], 3, exclude=ids[20])
    assert ids[20] not in found


def test_a_damaged_kind_record_in_the_manifest_is_refused(tmp_path):
    import json

    from simsearch.index.storage import StorageError

    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="image")
    index.add([NewExemplar("g.png")], clustered(1))
    index.save(tmp_path / "idx")
    manifest_path = tmp_path / "idx" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["stores"]["good"]["nprobe"] = -3
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StorageError, match="nprobe"):
        ExemplarIndex.load(tmp_path / "idx", fast=True)


@pytest.mark.parametrize("spec", ["IVF", "Fleet", "PQ7", "IDMap,Flat", "patch=Flat"])
def test_a_wrong_kind_is_refused_naming_the_parameter(spec):
    with pytest.raises(InputError) as raised:
        kinds.parse_kinds([spec], DIM * 2 + 2)
    assert raised.value.parameter == "index_kind"


def test_role_kinds_apply_to_their_store_and_a_bare_kind_to_all():
    assert kinds.parse_kinds(None, DIM) == {"good": "auto", "defect": "auto", "patches": "auto"}
    assert kinds.parse_kinds("HNSW32", DIM) == {"good": "HNSW32", "defect": "HNSW32", "patches": "HNSW32"}
    assert kinds.parse_kinds(["patches=IVF64,Flat", "good=Flat"], DIM) == \
        {"good": "Flat", "defect": "auto", "patches": "IVF64,Flat"}


@pytest.mark.parametrize("kind", ["IVF16_HNSW8,Flat", "IVF16_HNSW8,SQ8", "IVF16_HNSW8,PQ8x4", "IVF16,SQ8", "Flat"])
def test_the_gpu_copy_of_an_ivf_has_a_flat_quantizer_over_the_same_lists(kind):
    """FAISS's GPU IVF takes only a flat coarse quantizer (an HNSW one made index_cpu_to_gpu fail, and the
    store searched on the CPU): the copy handed to it has one, over the same centroids and lists, and the
    store's own index keeps its graph."""
    import gc

    store, vectors, ids = _store(kind)
    copy = kinds.with_flat_quantizer(store.index)
    ivf = kinds.ivf_of(store.index)
    if ivf is None or "HNSW" not in kind:
        assert copy is store.index
        return
    assert copy is not store.index and isinstance(faiss.downcast_index(ivf.quantizer), faiss.IndexHNSW)
    inner = kinds.ivf_of(copy)
    assert isinstance(faiss.downcast_index(inner.quantizer), faiss.IndexFlat)
    np.testing.assert_array_equal(inner.quantizer.reconstruct_n(0, inner.nlist),
                                  ivf.quantizer.reconstruct_n(0, ivf.nlist))
    assert inner.nprobe == ivf.nprobe and sorted(kinds.stored_ids(copy)) == sorted(ids.tolist())
    queries = clustered(300, seed=11)
    exact_d, _ = faiss.knn(queries, vectors, 1)
    recalls = []
    for index in (store.index, copy):
        _, found = index.search(queries, 1)
        recalls.append(kinds.recall(exact_d, kinds.true_distances(queries, found, vectors, ids), 1))
    assert recalls[1] >= recalls[0] - 0.02  # exact list choice: never worse than the graph's
    del copy, inner
    gc.collect()  # the copy frees its flat quantizer and Python the graph it replaced, without a crash
    assert len(store.search(queries[:5], 1)[1]) == 5
