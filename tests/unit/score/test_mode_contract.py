"""The ScoringMode contract from outside simsearch/score/modes.py: a mode registered here keeps a store of its
own (a projection of each good exemplar's max-pooled patches, in a lower dimension) and a learned artifact (the
projection matrix), and runs through Inspector.fit, save, load, add, remove and scoring without the index or
the inspector knowing it."""

from __future__ import annotations

import io

import numpy as np
import pytest

from simsearch.index import ExemplarIndex, Role
from simsearch.score.modes import SCORING_MODES, ScoringMode, register_scoring_mode

PROJECTED = 16


def _matrix_bytes(matrix: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, matrix, allow_pickle=False)
    return buffer.getvalue()


class PooledProjectionMode(ScoringMode):
    """Distance of an image's max-pooled patches, projected, to the nearest good exemplar's (leave-one-out)."""

    name = "toy-pooled-projection"
    needs_patches = True
    roles = {"pooled": Role("good", dim=PROJECTED)}

    @staticmethod
    def projection(index: ExemplarIndex) -> np.ndarray:
        return np.load(io.BytesIO(index.artifacts["toy_projection"]), allow_pickle=False)

    def bank(self, index, ids, labels, embeddings, masks):
        if "toy_projection" not in index.artifacts:  # learned once, from the first exemplars
            rng = np.random.default_rng(len(ids))
            basis, _ = np.linalg.qr(rng.standard_normal((index.dim, PROJECTED)))
            index.artifacts["toy_projection"] = _matrix_bytes(basis.astype(np.float32))
            index.artifact_records["toy_projection"] = {"shape": [index.dim, PROJECTED]}
        good = np.array([label == "good" for label in labels])
        if good.any():
            pooled = embeddings.patches[good].max(axis=(1, 2)) @ self.projection(index)
            index.vectors["pooled"].add(pooled, ids[good])

    def score(self, index, embeddings, exclude=None, maps=True):
        pooled = embeddings.patches.max(axis=(1, 2)) @ self.projection(index)
        return index.search("pooled", pooled, 1, exclude)[0][:, 0], None

    def describe(self, index):
        return {"pooled_vectors": len(index.vectors["pooled"])}


@pytest.fixture(scope="module", autouse=True)
def toy_mode():
    register_scoring_mode(PooledProjectionMode)
    yield
    SCORING_MODES.pop(PooledProjectionMode.name)
    from simsearch.index.roles import KEEPERS

    KEEPERS.pop(PooledProjectionMode.name)


def test_a_bank_that_refuses_undoes_the_whole_add():
    class Refusing(PooledProjectionMode):
        name = "toy-refusing"

        def bank(self, index, ids, labels, embeddings, masks):
            super().bank(index, ids, labels, embeddings, masks)
            if "defect" in labels:
                raise ValueError("no defects here")

    register_scoring_mode(Refusing)
    try:
        from simsearch.index import NewExemplar

        index = ExemplarIndex(32, {"kind": "test"}, "fp", mode=Refusing.name)
        grids = np.random.default_rng(1).normal(size=(3, 2, 2, 32)).astype(np.float32)
        index.add([NewExemplar("g0"), NewExemplar("g1")], grids[:2].mean(axis=(1, 2)), grids[:2])
        before = (index.counts(), index.next_id, dict(index.exemplars))
        with pytest.raises(ValueError, match="no defects"):
            index.add([NewExemplar("g2"), NewExemplar("d0", "defect")], grids[1:].mean(axis=(1, 2)), grids[1:])
        assert (index.counts(), index.next_id, dict(index.exemplars)) == before
    finally:
        SCORING_MODES.pop(Refusing.name)
        from simsearch.index.roles import KEEPERS

        KEEPERS.pop(Refusing.name)
