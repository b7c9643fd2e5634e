import faiss
import numpy as np

from simsearch.index.pruned_search import build_partition, carry_partition, pruned_search
from simsearch.index.vectors import PRUNED_MIN_SIZE, VectorStore


def _clustered(n, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (40, d))
    return (centres[rng.integers(0, 40, n)] + rng.normal(0, 0.3, (n, d))).astype(np.float32)


def test_same_neighbours_as_flat_search():
    bank, queries = _clustered(5000), _clustered(700, seed=1)
    flat = faiss.IndexFlatL2(bank.shape[1])
    flat.add(bank)
    expected_d, expected_i = flat.search(queries, 3)
    ids = np.arange(len(bank)) * 7  # external ids come back, not positions
    got_d, got_i = pruned_search(build_partition(bank, ids, points_per_cell=32), queries, 3)
    assert np.array_equal(got_i, expected_i * 7)
    assert np.allclose(got_d, expected_d, rtol=1e-3, atol=1e-3)


def test_store_uses_it_for_large_banks_and_forgets_it_on_change():
    bank = _clustered(PRUNED_MIN_SIZE + 10)
    store = VectorStore(bank.shape[1])
    store.add(bank, np.arange(len(bank)))
    _, ids = store.search(bank[:100], 1)
    assert store._partition is not None and np.array_equal(ids[:, 0], np.arange(100))
    store.remove_ids(np.arange(50))
    assert store._partition is None
    _, ids = store.search(bank[:100], 1)
    assert not np.isin(ids, np.arange(50)).any()


def test_unstructured_bank_falls_back_to_flat_search():
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((PRUNED_MIN_SIZE + 10, 64), dtype=np.float32)  # no cells to prune
    assert pruned_search(build_partition(bank, np.arange(len(bank))), bank[:100], 1) is None
    store = VectorStore(64)
    store.add(bank, np.arange(len(bank)))
    _, ids = store.search(bank[:100], 1)
    assert np.array_equal(ids[:, 0], np.arange(100))


def test_largest_nearest_of_each_group_is_the_max_of_a_full_search():
    """The image score's search: each group's largest nearest distance, found by searching in full only the
    queries whose nearest-cell bound can still hold the maximum, equals the max over a full search."""
    from simsearch.index.pruned_search import pruned_largest_nearest

    bank, dim = _clustered(6000), 32
    queries = _clustered(40 * 196, seed=2).reshape(40, 196, dim)
    rng = np.random.default_rng(5)
    queries[::3, rng.integers(0, 196, 14)] += rng.normal(0, 1.5, (14, 14, dim)).astype(np.float32)  # a defect
    part = build_partition(bank, np.arange(len(bank)), points_per_cell=32)
    exact, _ = faiss.knn(queries.reshape(-1, dim), bank, 1)
    expected = exact[:, 0].reshape(40, 196).max(axis=1)
    np.testing.assert_allclose(pruned_largest_nearest(part, queries), expected, rtol=1e-4)

    store = VectorStore(dim)
    store.add(bank, np.arange(len(bank)) * 3)
    np.testing.assert_allclose(store.largest_nearest(queries), np.sqrt(expected), rtol=1e-4)
    small = VectorStore(dim)  # below the pruning size: a search and a max, the same answer
    small.add(bank[:500], np.arange(500))
    by_search = small.search(queries.reshape(-1, dim), 1)[0][:, 0].reshape(40, 196).max(axis=1)
    np.testing.assert_array_equal(small.largest_nearest(queries), by_search)


def test_appended_and_removed_vectors_are_found_exactly_on_carried_cells(monkeypatch):
    """A changed store carries its cells over (no k-means again): vectors appended far from every cell, and a
    copy of the store changed again, are still found exactly, as a flat search finds them."""
    import simsearch.index.vectors as vectors_module

    bank, dim = _clustered(PRUNED_MIN_SIZE + 500), 32
    store = VectorStore(dim)
    store.add(bank, np.arange(len(bank)))
    store.largest_nearest(bank[:64].reshape(1, 64, dim))  # the cells are trained here
    trained = store._partition.centroids.copy()
    builds = []
    monkeypatch.setattr(vectors_module, "build_partition",
                        lambda *a, **kw: builds.append(1) or build_partition(*a, **kw))
    rng = np.random.default_rng(7)
    far = (rng.normal(0, 4, (1, dim)) * 2 + rng.normal(0, 0.3, (300, dim))).astype(np.float32)  # a new cluster
    store.add(far, np.arange(300) + 10**6)
    store.remove_ids(np.arange(200))
    clone = store.copy()
    clone.add(far[:50] + 0.5, np.arange(50) + 2 * 10**6)
    near = rng.normal(0, 0.2, (400, dim)).astype(np.float32)  # not closer: float rounding would tie them
    queries = np.concatenate([far[::6], bank[100:400], far[:50] + 0.5]) + near
    for changed in (store, clone):
        vectors, ids = changed.contents()
        flat = faiss.IndexFlatL2(dim)
        flat.add(vectors)
        expected_d, expected_i = flat.search(queries, 2)
        got_d, got_i = changed.search(queries, 2)
        assert changed._partition is not None and np.array_equal(changed._partition.centroids, trained)
        # nearest ids exactly; second ones can tie within float rounding: their distances
        assert np.array_equal(got_i[:, 0], ids[expected_i[:, 0]])
        np.testing.assert_allclose(got_d, np.sqrt(expected_d), rtol=1e-3, atol=1e-3)
        groups = queries.reshape(10, 40, dim)
        np.testing.assert_allclose(changed.largest_nearest(groups),
                                   np.sqrt(expected_d[:, 0]).reshape(10, 40).max(axis=1), rtol=1e-4)
    assert not builds
    # grown far past what the cells were trained on: trained again
    big = VectorStore(dim)
    big.carry_cells_from(store)
    big.add(_clustered(3 * len(bank), seed=3), np.arange(3 * len(bank)))
    big.search(bank[:100], 1)
    assert builds == [1]


def test_a_copy_shares_the_cells_and_stays_independent():
    """A copy of a store with cells takes the same partition (no cells carried again at its first search); a
    change to either is not seen by the other, and both search exactly."""
    bank, dim = _clustered(PRUNED_MIN_SIZE + 200), 32
    store = VectorStore(dim)
    store.add(bank, np.arange(len(bank)))
    store.search(bank[:100], 1)
    clone = store.copy()
    assert clone._partition is store._partition and len(clone) == len(store)
    far = np.full((3, dim), 50.0, dtype=np.float32)
    clone.add(far, np.array([10**6, 10**6 + 1, 10**6 + 2]))
    assert len(store) == len(bank) and store._partition is not None and clone._partition is not store._partition
    assert store.search(far, 1)[1][0, 0] < len(bank) and clone.search(far, 1)[1][0, 0] >= 10**6
    store.remove_ids(np.arange(10))
    assert len(clone) == len(bank) + 3 and clone.search(bank[:5], 1)[1][:, 0].tolist() == list(range(5))


def test_appended_vectors_extend_the_cells_and_are_found_exactly(monkeypatch):
    """An add to a store with cells extends them at once (no carry at the next search): far vectors widen their
    cell's radius, and searches still give what a flat search gives."""
    import simsearch.index.vectors as vectors_module

    bank, dim = _clustered(PRUNED_MIN_SIZE + 300), 32
    store = VectorStore(dim)
    store.add(bank, np.arange(len(bank)))
    store.search(bank[:100], 1)
    before = store._partition
    carried = []
    monkeypatch.setattr(vectors_module, "carry_partition",
                        lambda *a, **kw: carried.append(1) or carry_partition(*a, **kw))
    rng = np.random.default_rng(11)
    added = np.concatenate([rng.normal(0, 0.5, (40, dim)) + bank[7], rng.normal(0, 8, (5, dim))]).astype(np.float32)
    store.add(added, np.arange(45) + 10**6)
    part = store._partition
    assert part is not None and part is not before and part.centroids is before.centroids
    assert (part.radius >= before.radius).all() and (part.radius > before.radius).any()
    queries = np.concatenate([added, bank[::37]]) + rng.normal(0, 0.2, (45 + len(bank[::37]), dim))
    queries = queries.astype(np.float32)  # not closer: float rounding would tie neighbours
    vectors, ids = store.contents()
    flat = faiss.IndexFlatL2(dim)
    flat.add(vectors)
    expected_d, expected_i = flat.search(queries, 1)
    got_d, got_i = store.search(queries, 1)
    assert np.array_equal(got_i[:, 0], ids[expected_i[:, 0]])
    np.testing.assert_allclose(got_d[:, 0], np.sqrt(expected_d[:, 0]), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(store.largest_nearest(queries[:45].reshape(5, 9, dim)),
                               np.sqrt(expected_d[:45, 0]).reshape(5, 9).max(axis=1), rtol=1e-4, atol=1e-4)
    assert not carried
    store.remove_ids(np.arange(10))  # a removal: the cells are carried at the next search
    store.search(bank[:64], 1)
    assert carried == [1]
