"""FAISS on a GPU: each store kind searched there gives the CPU's answers (skipped without a GPU)."""

import faiss
import numpy as np
import pytest

from simsearch.index.vectors import VectorStore, gpu_count

pytestmark = pytest.mark.skipif(not gpu_count(), reason="no GPU that FAISS can use: GPU search is checked on a "
                                                        "machine with one")
DIM = 64


def _innermost(index: faiss.Index) -> faiss.Index:
    index = faiss.downcast_index(index)
    while isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
        index = faiss.downcast_index(index.index)
    return index


@pytest.mark.parametrize("kind", ["Flat", "IVF64,Flat", "IVF64_HNSW32,SQ8", "IVF64,PQ16", "OPQ16,IVF64,PQ16"])
def test_a_store_searches_on_the_gpu_with_the_cpus_answers(kind):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, DIM)).astype(np.float32) * 4
    vectors = (centres[rng.integers(0, 40, 20000)] + rng.standard_normal((20000, DIM))).astype(np.float32)
    store = VectorStore(DIM)
    store.add(vectors, np.arange(len(vectors), dtype=np.int64) + 7)
    store.apply_kind(kind)
    queries = (centres[rng.integers(0, 40, 500)] + rng.standard_normal((500, DIM))).astype(np.float32)
    cpu_squared, cpu_ids = store.index.search(queries, 5)
    gpu_distances, gpu_ids = store.search(queries, 5)
    assert "Gpu" in type(_innermost(store._search_index)).__name__, type(_innermost(store._search_index))
    agree = (gpu_ids[:, 0] == cpu_ids[:, 0]).mean()
    assert agree >= (0.999 if kind == "Flat" else 0.9), agree
    if kind == "Flat":
        np.testing.assert_allclose(gpu_distances ** 2, cpu_squared, rtol=1e-3, atol=1e-3)
