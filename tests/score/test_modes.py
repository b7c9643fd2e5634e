"""Scoring modes on synthetic embeddings (both modes are defect-aware on image vectors): defect exemplars raise the scores of images near them, leave far
images alone, change nothing when absent, and their removal restores the old scores bit for bit."""

import numpy as np
import pytest

from simsearch.embed.base import Embeddings
from simsearch.errors import UnknownComponentError
from simsearch.index.exemplar_index import ExemplarIndex, NewExemplar
from simsearch.score.modes import SCORING_MODES, anomaly_scores, defect_aware, get_scoring_mode

DIM, GRID = 8, (4, 4)


def _grids(rng, centres):
    """One patch grid per centre: patches scattered around it."""
    return np.stack([c + 0.05 * rng.standard_normal((*GRID, DIM)) for c in centres]).astype(np.float32)


def _index(mode, rng):
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode=mode, coreset_ratio=1.0)
    good = _grids(rng, [np.zeros(DIM)] * 6)
    index.add([NewExemplar(f"g{i}") for i in range(6)], good.mean(axis=(1, 2)), good)
    return index


@pytest.mark.parametrize("mode", sorted(SCORING_MODES))
def test_defects_raise_near_scores_leave_far_ones_and_removal_restores(mode):
    rng = np.random.default_rng(0)
    index = _index(mode, rng)
    defect_centre = np.full(DIM, 1.0)
    queries = _grids(rng, [defect_centre * 0.9, -defect_centre, np.zeros(DIM)])  # near defect, far, good
    embeddings = Embeddings(queries.mean(axis=(1, 2)), queries)
    before, _ = anomaly_scores(index, embeddings)

    grid = _grids(rng, [defect_centre])
    ids = index.add([NewExemplar("d0", "defect", "crack")], grid.mean(axis=(1, 2)), grid)
    with_defect, _ = anomaly_scores(index, embeddings)
    assert with_defect[0] > before[0] * 1.5  # looks like the known defect: raised
    assert with_defect[1] == before[1]  # on the other side of the good parts: untouched
    assert with_defect[2] == before[2]

    index.remove(ids)
    after, _ = anomaly_scores(index, embeddings)
    assert np.array_equal(after, before)


def test_without_defects_the_score_is_plain_knn_bit_for_bit():
    good = np.array([0.5, 2.0, 3.0], np.float32)
    assert defect_aware(good, None) is good
    far = defect_aware(good, np.array([1.0, 5.0, 3.0], np.float32))
    assert far[1] == good[1] and far[2] == good[2]  # nearest defect no nearer than the nearest good part
    assert far[0] == good[0]
    assert defect_aware(np.array([2.0]), np.array([1.0]))[0] == pytest.approx(2.0 * (1 + np.log(2.0)))


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(UnknownComponentError, match="unknown scoring mode"):
        get_scoring_mode("nope")
