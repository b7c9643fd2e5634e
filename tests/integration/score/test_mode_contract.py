"""The ScoringMode contract from outside simsearch/score/modes.py: a mode registered here keeps a store of its
own (a projection of each good exemplar's max-pooled patches, in a lower dimension) and a learned artifact (the
projection matrix), and runs through Inspector.fit, save, load, add, remove and scoring without the index or
the inspector knowing it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simsearch.embed.base import Embeddings
from simsearch.inspector import Inspector
from simsearch.score.modes import describe_index
from tests.conftest import part_image
from tests.unit.score.test_mode_contract import PROJECTED, PooledProjectionMode, toy_mode  # noqa: F401  (fixture)


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
