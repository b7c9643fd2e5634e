"""The ScoringMode contract from outside simsearch/score/modes.py: a mode registered here keeps a store of its
own (a projection of each good exemplar's max-pooled patches, in a lower dimension) and a learned artifact (the
projection matrix), and runs through Inspector.fit, save, load, add, remove and scoring without the index or
the inspector knowing it."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from simsearch.embed.base import Embeddings
from simsearch.index import ExemplarIndex, Role
from simsearch.inspector import Inspector
from simsearch.score.modes import SCORING_MODES, ScoringMode, describe_index, register_scoring_mode
from tests.conftest import part_image

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


def test_a_mode_registered_outside_modes_py_builds_saves_loads_adds_removes_and_scores(small_embedder, tmp_path):
    rng = np.random.default_rng(0)
    good = [part_image(rng) for _ in range(6)]
    inspector = Inspector(small_embedder, mode=PooledProjectionMode.name).fit(good)
    index = inspector.index_
    assert len(index.vectors["pooled"]) == 6 and index.vectors["pooled"].dim == PROJECTED
    assert set(index.vectors) == {"good", "defect", "pooled"}  # nothing of the patch modes
    queries = [part_image(rng) for _ in range(3)]
    expected = small_embedder.embed(queries)
    pooled = expected.patches.max(axis=(1, 2)) @ PooledProjectionMode.projection(index)
    nearest = np.sqrt(((pooled[:, None, :] - index.vectors["pooled"].vectors()[None]) ** 2).sum(-1)).min(axis=1)
    scores = inspector.score_samples(queries)
    np.testing.assert_allclose(scores, nearest, rtol=1e-4)

    inspector.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["format_version"] == 3 and manifest["roles"]["pooled"] == {"label": "good", "per_patch": False,
                                                                               "dim": PROJECTED}
    assert manifest["files"]["toy_projection"].endswith(".bin") and "toy_projection" in manifest["checksums"]
    loaded = Inspector.load(tmp_path / "idx", embedder=small_embedder)
    assert loaded.index_.artifacts["toy_projection"] == index.artifacts["toy_projection"]
    assert np.array_equal(loaded.index_.vectors["pooled"].ids(), index.vectors["pooled"].ids())
    assert np.array_equal(loaded.score_samples(queries), scores)
    assert describe_index(loaded.index_)["pooled_vectors"] == 6

    new_ids, _ = loaded.add_saved(tmp_path / "idx", queries[:1], "good")  # under the lock, saved
    loaded = Inspector.load(tmp_path / "idx", embedder=small_embedder)
    assert len(loaded.index_.vectors["pooled"]) == 7
    assert loaded.score_samples(queries[:1])[0] == pytest.approx(0.0, abs=1e-3)  # now its own exemplar
    loaded.add(queries[1:2], "defect", defect_type="dent")
    assert len(loaded.index_.vectors["pooled"]) == 7  # it keeps nothing of defects

    loaded.remove(new_ids)
    assert len(loaded.index_.vectors["pooled"]) == 6 and new_ids[0] not in loaded.index_.vectors["pooled"].ids()
    np.testing.assert_allclose(loaded.score_samples(queries), scores, rtol=1e-6)
    copy = loaded.index_.copy()
    copy.remove([0])
    assert len(copy.vectors["pooled"]) == 5 and len(loaded.index_.vectors["pooled"]) == 6

    # leave-one-out through the mode: an exemplar's own vector is left out
    own = Embeddings(np.zeros((1, index.dim), np.float32), small_embedder.embed([good[0]]).patches)
    assert PooledProjectionMode().score(loaded.index_, own)[0][0] == pytest.approx(0.0, abs=1e-3)
    assert PooledProjectionMode().score(loaded.index_, own, exclude=0)[0][0] > 1e-3


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
