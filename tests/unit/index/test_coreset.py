import numpy as np

from simsearch.index.coreset import greedy_coreset, greedy_coreset_reference


def _clustered(n=3000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (30, d))
    return (centres[rng.integers(0, 30, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def test_pruned_selection_equals_plain_greedy():
    points = _clustered()
    assert np.array_equal(greedy_coreset(points, 300, points_per_cell=32), greedy_coreset_reference(points, 300))


def test_continues_from_existing_centres():
    points = _clustered(seed=1)
    existing = points[:50]
    rest = points[50:]
    assert np.array_equal(greedy_coreset(rest, 100, existing=existing, points_per_cell=32),
                          greedy_coreset_reference(rest, 100, existing=existing))


def test_covering_radius_shrinks_and_beats_random():
    points = _clustered(seed=2)

    def radius(selected):
        diff = points[:, None, :] - points[selected][None]
        return np.sqrt((diff ** 2).sum(-1)).min(1).max()

    chosen = greedy_coreset(points, 60)
    random = np.random.default_rng(0).choice(len(points), 60, replace=False)
    assert radius(chosen) < radius(chosen[:20]) and radius(chosen) < radius(random)


def test_stops_when_every_point_is_selected():
    points = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)  # 3 distinct points, 4 copies each
    assert len(greedy_coreset(points, 10)) == 3


def test_continues_from_given_distances_as_from_the_centres_they_were_measured_to():
    points = _clustered(seed=3)
    existing, rest = points[:80], points[80:]
    given = np.sqrt(((rest[:, None, :] - existing[None]) ** 2).sum(-1)).min(1)
    chosen = greedy_coreset(rest, 100, initial=given, points_per_cell=32)
    assert np.array_equal(chosen, greedy_coreset_reference(rest, 100, initial=given))
    assert np.array_equal(chosen, greedy_coreset_reference(rest, 100, existing=existing))
