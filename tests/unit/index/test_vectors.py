"""VectorStore.search: exact distances, leave-one-out exclusion and padding when k exceeds the store."""

import numpy as np

from simsearch.index.vectors import VectorStore


def _line_store(n=5, dim=4):
    # Points 0, 1, 2, ... on the first axis: every distance is known exactly.
    vectors = np.zeros((n, dim), np.float32)
    vectors[:, 0] = np.arange(n)
    store = VectorStore(dim)
    store.add(vectors, np.arange(10, 10 + n, dtype=np.int64))
    return store, vectors


def test_search_returns_exact_distances_and_ids():
    store, vectors = _line_store()
    distances, ids = store.search(vectors[:1], 3)
    assert ids.tolist() == [[10, 11, 12]]
    np.testing.assert_allclose(distances, [[0.0, 1.0, 2.0]], atol=1e-6)


def test_exclude_range_never_returns_the_excluded_id_and_keeps_the_others():
    store, vectors = _line_store()
    plain_d, plain_ids = store.search(vectors[2:3], 5)
    distances, ids = store.search(vectors[2:3], 4, exclude_range=(12, 13))
    assert 12 not in ids
    assert ids.tolist() == [[i for i in plain_ids[0].tolist() if i != 12]]
    np.testing.assert_allclose(distances[0], [d for d, i in zip(plain_d[0], plain_ids[0]) if i != 12], atol=1e-6)


def test_k_larger_than_the_store_pads_with_inf_and_minus_one():
    store, vectors = _line_store(n=3)
    distances, ids = store.search(vectors[:2], 5)
    assert distances.shape == ids.shape == (2, 5)
    assert ids[:, 3:].tolist() == [[-1, -1], [-1, -1]] and np.isinf(distances[:, 3:]).all()
    assert sorted(ids[0, :3].tolist()) == [10, 11, 12]
    # Excluding one of three leaves two real neighbours, then padding.
    distances, ids = store.search(vectors[:1], 3, exclude_range=(10, 11))
    assert ids.tolist() == [[11, 12, -1]] and np.isinf(distances[0, 2])


def test_empty_store_answers_padding_only():
    distances, ids = VectorStore(4).search(np.zeros((2, 4), np.float32), 2)
    assert ids.tolist() == [[-1, -1], [-1, -1]] and np.isinf(distances).all()
