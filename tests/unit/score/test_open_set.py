"""The open-set mode on synthetic embeddings: with no helpful labels it is the good-only residual bit for bit,
with labels that help out of fold it weighs them, its maps stay the residual's, and the weight is chosen on
the index's own exemplars only (never on what it scores)."""

import numpy as np
import pytest

from simsearch.embed.base import Embeddings
from simsearch.index.exemplar_index import ExemplarIndex, NewExemplar
from simsearch.index.persist import load_index
from simsearch.score import open_set
from simsearch.score.modes import anomaly_scores, describe_index
from simsearch.score.open_set import MIN_DEFECTS, auroc, choose_weight, defect_weight

DIM, GRID = 16, (4, 4)


def _grids(rng, count, defect_at=None, strength=0.0, spread=0.0):
    """Noise patch grids; `defect_at` (a direction) added to one patch of each (a local defect), and `spread`
    times it to every patch (a faint change over the whole part)."""
    grids = rng.standard_normal((count, *GRID, DIM)).astype(np.float32)
    if defect_at is not None:
        grids[:, 1, 2] += strength * defect_at
        grids += spread * np.asarray(defect_at, dtype=np.float32)
    return grids


def _add(index, grids, label="good", defect_type=None):
    items = [NewExemplar(f"{label}{index.next_id + n}", label, defect_type) for n in range(len(grids))]
    return index.add(items, grids.mean(axis=(1, 2)), grids)


def _index(mode, rng, goods=40):
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode=mode, coreset_ratio=1.0)
    _add(index, _grids(rng, goods))
    return index


def _embeddings(grids):
    return Embeddings(grids.mean(axis=(1, 2)), grids)


def test_without_helpful_labels_it_is_the_residual_bit_for_bit():
    rng = np.random.default_rng(0)
    open_index = _index("open-set", rng)
    patch_index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="patch", coreset_ratio=1.0)
    vectors, ids = open_index.vectors["patches"].contents()
    # the same good exemplars in a plain patch index
    grids = np.zeros((40, *GRID, DIM), dtype=np.float32)
    grids.reshape(40, -1, DIM)[ids >> 24, ids & 0xFFFFFF] = vectors
    _add(patch_index, grids)
    queries = np.concatenate([_grids(rng, 10), _grids(rng, 10, rng.standard_normal(DIM), 6.0)])
    residual, residual_maps = anomaly_scores(patch_index, _embeddings(queries))
    # two defects: too few to show out of fold that they help; random ones that look like nothing in common
    _add(open_index, _grids(rng, 2, rng.standard_normal(DIM), 6.0), "defect", "dent")
    choice = defect_weight(open_index)
    assert not choice.uses_labels and f"needs {MIN_DEFECTS}" in choice.reason
    scores, maps = anomaly_scores(open_index, _embeddings(queries))
    assert np.array_equal(scores, residual) and np.array_equal(maps, residual_maps)
    fast, no_maps = anomaly_scores(open_index, _embeddings(queries), maps=False)
    assert np.array_equal(fast, residual) and no_maps is None


def test_labels_that_help_out_of_fold_are_weighed_and_raise_the_auroc():
    rng = np.random.default_rng(1)
    index = _index("open-set", rng)
    direction = rng.standard_normal(DIM)
    direction /= np.linalg.norm(direction)
    # a seen defect type: a faint change over the whole part, consistent from one defect to the next, that the
    # largest patch distance barely tells from the goods' noise and the image vectors show plainly
    _add(index, _grids(rng, 8, direction, 0.0, 1.0), "defect", "stain")
    choice = defect_weight(index)
    assert choice.uses_labels, choice.reason
    assert choice.auroc[choice.weight, choice.direction_weight] > choice.auroc[0.0, 0.0]
    queries = np.concatenate([_grids(rng, 30), _grids(rng, 15, direction, 0.0, 1.0)])
    labels = np.r_[np.zeros(30), np.ones(15)]
    weighed, maps = anomaly_scores(index, _embeddings(queries))
    residual = np.asarray(maps).reshape(len(queries), -1).max(axis=1)  # the maps are the residual's
    assert auroc(labels, weighed) > auroc(labels, residual)
    assert describe_index(index)["defect_weight"]["weight"] == choice.weight
    assert describe_index(index)["defect_weight"]["direction_weight"] == choice.direction_weight


def test_maps_are_the_good_only_residual_with_defects_indexed():
    rng = np.random.default_rng(2)
    index = _index("open-set", rng)
    direction = rng.standard_normal(DIM)
    queries = _grids(rng, 5, direction, 3.0)
    _, before = anomaly_scores(index, _embeddings(queries))
    _add(index, _grids(rng, 6, direction / np.linalg.norm(direction), 3.0), "defect", "stain")
    _, after = anomaly_scores(index, _embeddings(queries))
    assert np.array_equal(before, after)  # a known defect never saturates the map: it points where it pointed


def test_the_weight_is_chosen_on_the_index_exemplars_only(monkeypatch):
    rng = np.random.default_rng(3)
    index = _index("open-set", rng, goods=20)
    _add(index, _grids(rng, 5, rng.standard_normal(DIM), 3.0), "defect")
    seen = {}
    original = open_set.choose_weight

    def spy(residuals, ratios, labels, projections=None):
        seen["count"], seen["defects"] = len(labels), int(np.sum(labels))
        return original(residuals, ratios, labels, projections)

    monkeypatch.setattr(open_set, "choose_weight", spy)
    anomaly_scores(index, _embeddings(_grids(rng, 50)))  # 50 scored images: none of them may count
    assert seen == {"count": 25, "defects": 5}
    seen.clear()
    anomaly_scores(index, _embeddings(_grids(rng, 7)))
    assert seen == {}  # chosen once per state of the stores, not per batch
    index.remove([index.next_id - 1])
    anomaly_scores(index, _embeddings(_grids(rng, 2)))
    assert seen == {"count": 24, "defects": 4}


def test_the_residuals_and_the_choice_survive_save_and_load(tmp_path):
    rng = np.random.default_rng(4)
    index = _index("open-set", rng, goods=20)
    direction = rng.standard_normal(DIM)
    _add(index, _grids(rng, 6, direction / np.linalg.norm(direction), 2.5), "defect", "stain")
    queries = _embeddings(_grids(rng, 6, direction, 2.5))
    scores, _ = anomaly_scores(index, queries)
    index.save(tmp_path / "index")
    loaded = load_index(tmp_path / "index")
    assert loaded.counts()["good_residuals"] == 20 and loaded.counts()["defect_residuals"] == 6
    assert defect_weight(loaded) == defect_weight(index)
    np.testing.assert_allclose(anomaly_scores(loaded, queries)[0], scores, rtol=1e-6)


@pytest.mark.parametrize("defects, expected", [(0, 0.0), (2, 0.0)])
def test_too_few_defects_fall_back_to_the_residual(defects, expected):
    labels = np.r_[np.zeros(20), np.ones(defects)].astype(bool)
    residuals = np.r_[np.ones(20), np.full(defects, 0.5)]
    ratios = np.r_[np.zeros(20), np.full(defects, 5.0)]
    choice = choose_weight(residuals, ratios, labels)
    assert choice.weight == expected and choice.auroc == {}


def test_a_weight_must_beat_the_residual_out_of_fold():
    rng = np.random.default_rng(5)
    labels = np.r_[np.zeros(30), np.ones(6)].astype(bool)
    residuals = np.r_[rng.uniform(1, 2, 30), rng.uniform(1.5, 3, 6)]
    noise = rng.standard_normal(36)  # ratios that say nothing
    assert not choose_weight(residuals, noise * 0.0, labels, noise * 0.0).uses_labels  # ties go to the residual
    assert not choose_weight(residuals, noise, labels, noise[::-1]).uses_labels  # what says nothing is not used
    helpful = np.where(labels, 2.0, -2.0) + 0.1 * noise
    choice = choose_weight(residuals, helpful, labels)
    assert choice.weight > 0.0 and choice.auroc[choice.weight, 0.0] == 1.0
    choice = choose_weight(residuals, noise, labels, projections=helpful)  # the discriminant alone helps
    assert choice.weight == 0.0 and choice.direction_weight > 0.0


def test_the_discriminant_is_fitted_without_the_exemplars_it_projects():
    rng = np.random.default_rng(6)
    goods, defects = rng.standard_normal((40, DIM)), rng.standard_normal((6, DIM)) + 2.0
    images, labels = np.concatenate([goods, defects]), np.r_[np.zeros(40), np.ones(6)].astype(bool)
    projections = open_set._projections_out_of_fold(images, labels)
    direction, origin = open_set.fit_direction(goods, defects)
    in_fold = (images - origin) @ direction
    assert not np.allclose(projections, in_fold)  # out of fold: not the fit that saw them
    assert auroc(labels, projections) > 0.9  # and still telling them apart
    assert np.std((goods - origin) @ direction) == pytest.approx(1.0, rel=0.2)  # the goods' spread is the unit


def test_among_equally_ranking_weights_the_widest_tail_gap_is_chosen():
    rng = np.random.default_rng(7)
    labels = np.r_[np.zeros(40), np.ones(10)].astype(bool)
    residuals = np.r_[rng.uniform(1.0, 2.0, 40), rng.uniform(1.2, 3.0, 10)]  # they overlap
    # both terms separate the exemplars perfectly: every non-zero weight ranks them alike (AUROC 1)
    projections = np.where(labels, 3.0, 0.0) + 0.1 * rng.standard_normal(50)
    ratios = np.where(labels, 0.3, 0.0) + 0.1 * rng.standard_normal(50)
    choice = choose_weight(residuals, ratios, labels, projections)
    tied = [ab for ab, value in choice.auroc.items() if value == 1.0]
    assert len(tied) > 1 and (choice.weight, choice.direction_weight) in tied
    gaps = {ab: open_set.tail_gap(labels, np.log(residuals) + ab[0] * choice.scales[0] * ratios
                                  + ab[1] * choice.scales[1] * projections) for ab in tied}
    assert gaps[choice.weight, choice.direction_weight] == max(gaps.values())
    assert gaps[choice.weight, choice.direction_weight] > gaps[min(tied, key=sum)]  # not the smallest weights


def test_the_tail_gap_is_in_the_goods_spread():
    labels = np.r_[np.zeros(10), np.ones(10)].astype(bool)
    scores = np.r_[np.arange(10.0), np.arange(10.0) + 20]
    expected = (np.quantile(np.arange(10.0) + 20, 0.1) - np.quantile(np.arange(10.0), 0.9)) / np.std(np.arange(10.0))
    assert open_set.tail_gap(labels, scores) == pytest.approx(expected)
    assert open_set.tail_gap(labels, scores[::-1]) < 0  # overlap (here, reversed) is negative
    assert open_set.tail_gap(labels.astype(int), scores) == pytest.approx(expected)  # 0/1 labels as well
