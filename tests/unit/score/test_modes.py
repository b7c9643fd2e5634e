"""Scoring modes on synthetic embeddings (both modes are defect-aware on image vectors): defect exemplars raise
the scores of images near them, leave far images alone, change nothing when absent, and their removal restores
the old scores bit for bit."""

import numpy as np
import pytest

from simsearch.embed.base import Embeddings
from simsearch.errors import UnknownComponentError
from simsearch.index.exemplar_index import ExemplarIndex, NewExemplar
from simsearch.score.banks import PATCH_ROLES, defect_coherence, nearest_patches, region_descriptors
from simsearch.score.modes import SCORING_MODES, anomaly_scores, defect_aware, get_scoring_mode

DIM, GRID = 8, (4, 4)


def _grids(rng, centres):
    """One patch grid per centre: patches scattered around it."""
    return np.stack([c + 0.05 * rng.standard_normal((*GRID, DIM)) for c in centres]).astype(np.float32)


def _index(mode, rng, roles=None):
    # roles=PATCH_ROLES: a contrast index without region stores (as one built before they existed)
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode=mode, coreset_ratio=1.0, roles=roles)
    good = _grids(rng, [np.zeros(DIM)] * 6)
    index.add([NewExemplar(f"g{i}") for i in range(6)], good.mean(axis=(1, 2)), good)
    return index


@pytest.mark.parametrize("mode", ["image", "patch"])
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


def test_contrast_raises_defect_like_parts_lowers_the_rest_and_equals_patch_mode_without_defects():
    rng = np.random.default_rng(0)
    index = _index("contrast", rng, roles=PATCH_ROLES)  # the image-vector ratio alone
    defect_centre = np.full(DIM, 1.0)
    queries = _grids(rng, [defect_centre * 0.9, -defect_centre, np.zeros(DIM)])  # near defect, far, good
    embeddings = Embeddings(queries.mean(axis=(1, 2)), queries)
    before, _ = anomaly_scores(index, embeddings)
    patch_index = _index("patch", np.random.default_rng(0))
    assert np.array_equal(before, anomaly_scores(patch_index, embeddings)[0])  # no defects: the patch mode's

    grids = _grids(rng, [defect_centre] * 4)
    ids = index.add([NewExemplar(f"d{i}", "defect", "crack") for i in range(4)], grids.mean(axis=(1, 2)), grids)
    with_defect, _ = anomaly_scores(index, embeddings)
    assert with_defect[0] > before[0] * 3  # much nearer the known defects than the goods
    assert with_defect[1] < before[1]  # unusual, but unlike every known defect
    good = index.nearest_good(embeddings.image[:1], 3)[0].mean()
    defect = index.nearest_defect(embeddings.image[:1], 3)[0].mean()
    assert with_defect[0] == pytest.approx(before[0] * good / defect, rel=1e-5)  # k = 3 on each side
    index.remove(ids)
    assert np.array_equal(anomaly_scores(index, embeddings)[0], before)


def test_contrast_trusts_the_ratio_only_as_far_as_the_known_defects_cluster():
    rng = np.random.default_rng(1)
    contrast, patch = _index("contrast", rng, roles=PATCH_ROLES), _index("patch", np.random.default_rng(1))
    queries = _grids(rng, [np.full(DIM, 0.9), -np.full(DIM, 1.0), np.zeros(DIM)])
    embeddings = Embeddings(queries.mean(axis=(1, 2)), queries)
    one = _grids(rng, [np.full(DIM, 1.0)])
    for index in (contrast, patch):
        index.add([NewExemplar("d0", "defect", "crack")], one.mean(axis=(1, 2)), one)
    assert defect_coherence(contrast) == 0.0  # one defect says nothing about the next: the patch mode exactly
    assert np.array_equal(anomaly_scores(contrast, embeddings)[0], anomaly_scores(patch, embeddings)[0])
    # defects on opposite sides of the goods, each nearer a good than the other defect: still scattered
    scattered = _grids(rng, [-np.full(DIM, 0.3)])
    contrast.add([NewExemplar("d1", "defect", "dent")], scattered.mean(axis=(1, 2)), scattered)
    assert defect_coherence(contrast) == 0.0
    clustered = _grids(rng, [np.full(DIM, 1.0)] * 2)
    contrast.add([NewExemplar(f"c{i}", "defect", "crack") for i in range(2)], clustered.mean(axis=(1, 2)), clustered)
    assert defect_coherence(contrast) == pytest.approx(0.75)  # 3 of the 4 have a defect as nearest neighbour


def test_without_defects_the_score_is_plain_knn_bit_for_bit():
    good = np.array([0.5, 2.0, 3.0], np.float32)
    assert defect_aware(good, None) is good
    far = defect_aware(good, np.array([1.0, 5.0, 3.0], np.float32))
    assert far[1] == good[1] and far[2] == good[2]  # nearest defect no nearer than the nearest good part
    assert far[0] == good[0]
    assert defect_aware(np.array([2.0]), np.array([1.0]))[0] == pytest.approx(2.0 * (1 + np.log(2.0)))


def test_patch_mode_keeps_a_coreset_and_removes_an_exemplars_patches():
    rng = np.random.default_rng(0)
    grids = rng.normal(0, 1, (6, *GRID, DIM)).astype(np.float32)
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="patch", coreset_ratio=0.5)
    index.add([NewExemplar(f"{i}.png") for i in range(6)], grids.mean(axis=(1, 2)), grids)
    assert len(index.vectors["patches"]) == 48
    maps, owners = nearest_patches(index, grids[:1])
    kept = index.vectors["patches"].ids()
    own = kept[(kept >> 24) == 0] & ((1 << 24) - 1)  # positions of exemplar 0's patches kept in the bank
    # A patch kept in the bank is its own nearest neighbour: distance 0, owner 0.
    assert maps.shape == (1, 4, 4) and (owners.reshape(-1)[own] == 0).all()
    np.testing.assert_allclose(maps.reshape(-1)[own], 0, atol=1e-3)
    before = len(index.vectors["patches"])
    index.remove([0])
    assert len(index.vectors["patches"]) == before - len(own)
    _, owners = nearest_patches(index, grids[:1])
    assert 0 not in owners


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(UnknownComponentError, match="unknown scoring mode"):
        get_scoring_mode("nope")


def _defect_grid(rng, defect_centre, defect_cells):
    """A mostly good patch grid whose `defect_cells` (row, col) carry the defect."""
    grid = _grids(rng, [np.zeros(DIM)])
    for row, col in defect_cells:
        grid[0, row, col] = defect_centre + 0.05 * rng.standard_normal(DIM)
    return grid


def test_patch_level_defects_raise_the_map_where_a_patch_looks_like_a_known_defect():
    rng = np.random.default_rng(1)
    index = _index("patch", rng)
    defect_centre = np.full(DIM, 1.0)
    query = _defect_grid(rng, defect_centre * 0.9, [(2, 3)])
    query[0, 0, 0] = -defect_centre  # anomalous, but unlike the known defect
    # the image vector stays near the goods, so only the patch level can explain a raise
    embeddings = Embeddings(np.zeros((1, DIM), np.float32), query)
    before_scores, before_maps = anomaly_scores(index, embeddings)

    grid = _defect_grid(rng, defect_centre, [(1, 1)])
    ids = index.add([NewExemplar("d0", "defect", "crack")], np.full((1, DIM), 5.0, np.float32), grid)
    assert index.counts()["defect_patches"] == 1
    assert (index.vectors["defect_patches"].ids() & 0xFFFFFF).tolist() == [1 * GRID[1] + 1]  # the patch least like good
    scores, maps = anomaly_scores(index, embeddings)
    assert maps[0, 2, 3] > before_maps[0, 2, 3] * 1.1  # the defect-like patch is raised ...
    assert maps.max() <= scores[0]  # ... never above the image's score: it cannot saturate the map
    assert maps[0, 0, 0] == before_maps[0, 0, 0]  # the unlike anomaly is not
    assert np.array_equal(np.delete(maps.ravel(), [2 * GRID[1] + 3]), np.delete(before_maps.ravel(), [2 * GRID[1] + 3]))
    # the image score stays the good-patch one: only the image vector's resemblance to a defect raises it
    # (here the defect's image vector is far away), see PatchMode
    assert scores[0] == before_scores[0]

    index.remove(ids)
    assert index.counts()["defect_patches"] == 0
    after_scores, after_maps = anomaly_scores(index, embeddings)
    assert np.array_equal(after_scores, before_scores) and np.array_equal(after_maps, before_maps)


def test_a_mask_chooses_the_defect_patches():
    rng = np.random.default_rng(2)
    index = _index("patch", rng)
    grid = _defect_grid(rng, np.full(DIM, 1.0), [(0, 1), (3, 3)])
    mask = np.zeros(GRID, bool)
    mask[3, 3] = mask[3, 2] = True  # the mask, not the distances, decides
    index.add([NewExemplar("d0", "defect")], grid.mean(axis=(1, 2)), grid, masks=[mask])
    assert sorted((index.vectors["defect_patches"].ids() & 0xFFFFFF).tolist()) == [3 * GRID[1] + 2, 3 * GRID[1] + 3]


def test_the_defect_patch_bank_is_saved_and_loaded(tmp_path):
    rng = np.random.default_rng(3)
    index = _index("patch", rng)
    grid = _defect_grid(rng, np.full(DIM, 1.0), [(1, 2)])
    index.add([NewExemplar("d0", "defect", "crack")], grid.mean(axis=(1, 2)), grid)
    index.save(tmp_path / "index")
    loaded = ExemplarIndex.load(tmp_path / "index")
    assert np.array_equal(loaded.vectors["defect_patches"].ids(), index.vectors["defect_patches"].ids())
    query = _defect_grid(rng, np.full(DIM, 0.9), [(0, 0)])
    embeddings = Embeddings(query.mean(axis=(1, 2)), query)
    assert np.array_equal(anomaly_scores(loaded, embeddings)[1], anomaly_scores(index, embeddings)[1])


def test_predicted_type_comes_from_the_nearest_defect_patch_with_its_evidence():
    from simsearch.score.results import score_embeddings

    rng = np.random.default_rng(4)
    index = _index("patch", rng)
    crack, stain = np.full(DIM, 1.0), np.full(DIM, -1.0)
    for name, centre in (("crack", crack), ("stain", stain)):
        grid = _defect_grid(rng, centre, [(1, 1)])
        index.add([NewExemplar(name, "defect", name)], np.full((1, DIM), 5.0, np.float32), grid)
    query = _defect_grid(rng, stain * 0.9, [(2, 2)])
    plain = _grids(rng, [np.zeros(DIM)])
    results = score_embeddings(index, Embeddings(np.zeros((2, DIM), np.float32), np.concatenate([query, plain])))
    assert results[0].predicted_type == "stain"
    evidence = results[0].to_dict()["type_evidence"]
    assert evidence["level"] == "patch" and index.exemplars[evidence["patch_defect_id"]].defect_type == "stain"
    assert evidence["patch_defect_distance"] < evidence["patch_good_distance"]
    assert len(evidence["defect_ids"]) == 2 and evidence["defect_distances"] == sorted(evidence["defect_distances"])
    assert results[1].predicted_type is None  # a good part resembles no defect


def test_a_format_1_index_without_a_defect_patch_bank_loads_with_an_empty_one(tmp_path):
    import json

    rng = np.random.default_rng(5)
    _index("patch", rng).save(tmp_path / "index")
    manifest_path = tmp_path / "index" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 1
    del manifest["roles"], manifest["artifacts"]  # recorded since format 3
    for record in ("files", "checksums", "counts"):
        manifest[record].pop("defect_patches")
    manifest_path.write_text(json.dumps(manifest))
    loaded = ExemplarIndex.load(tmp_path / "index")
    assert loaded.counts()["defect_patches"] == 0


def _region_index(rng):
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="contrast", coreset_ratio=1.0)
    good = _grids(rng, [np.zeros(DIM)] * 6)
    index.add([NewExemplar(f"g{i}") for i in range(6)], good.mean(axis=(1, 2)), good)
    return index


def test_region_descriptors_average_the_patches_farthest_from_the_good_bank():
    grids = np.zeros((1, 20, 20, 2), np.float32)  # 400 patches: 10 make the region
    distances = np.zeros((1, 20, 20), np.float32)
    grids[0, :2, :5] = [3.0, -1.0]
    distances[0, :2, :5] = 5.0
    grids[0, 10, 10], distances[0, 10, 10] = [100.0, 100.0], 0.5  # odd but close to the bank: not the region
    assert np.allclose(region_descriptors(grids, distances), [[3.0, -1.0]])


def test_contrast_compares_the_defect_region_too_and_removal_restores():
    rng = np.random.default_rng(4)
    index = _region_index(rng)
    assert len(index.vectors["good_regions"]) == 6 and len(index.vectors["defect_regions"]) == 0
    crack = np.full(DIM, 1.0)
    queries = _defect_grid(rng, crack * 0.9, [(0, 0), (0, 1)]), _defect_grid(rng, -crack, [(2, 2), (3, 3)])
    embeddings = Embeddings(np.concatenate([q.mean(axis=(1, 2)) for q in queries]), np.concatenate(queries))
    before, _ = anomaly_scores(index, embeddings)
    grids = np.concatenate([_defect_grid(rng, crack, [(1, 1), (2, 1)]) for _ in range(3)])
    ids = index.add([NewExemplar(f"d{i}", "defect", "crack") for i in range(3)], grids.mean(axis=(1, 2)), grids)
    assert sorted(index.vectors["defect_regions"].ids().tolist()) == ids
    with_defect, _ = anomaly_scores(index, embeddings)
    assert with_defect[0] > before[0]  # its unusual region looks like the known cracks, wherever it lies
    assert with_defect[1] < before[1]  # an unusual region unlike every known defect
    # the factor is the geometric mean of the whole-image ratio and the region ratio
    plain = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="contrast", coreset_ratio=1.0, roles=PATCH_ROLES)
    for role in ("good", "defect", "patches", "defect_patches"):
        plain.vectors[role] = index.vectors[role]
    plain.exemplars = index.exemplars
    image_only, _ = anomaly_scores(plain, embeddings)
    assert not np.allclose(image_only, with_defect)
    index.remove(ids)
    assert len(index.vectors["defect_regions"]) == 0
    assert np.array_equal(anomaly_scores(index, embeddings)[0], before)


def test_good_regions_leave_the_exemplar_itself_out_and_survive_save_and_load(tmp_path):
    rng = np.random.default_rng(5)
    index = _region_index(rng)
    odd = _defect_grid(rng, np.full(DIM, -2.0), [(3, 3)])  # a good part with one unusual patch
    (odd_id,) = index.add([NewExemplar("g-odd")], odd.mean(axis=(1, 2)), odd)
    regions = index.vectors["good_regions"]
    region = regions.contents()[0][regions.ids() == odd_id][0]
    assert np.allclose(region, odd[0, 3, 3])  # found against the other goods, not hidden by its own patch
    grid = _defect_grid(rng, np.full(DIM, 1.0), [(0, 0)])
    index.add([NewExemplar("d0", "defect", "crack")], grid.mean(axis=(1, 2)), grid)
    index.save(tmp_path / "index")
    loaded = ExemplarIndex.load(tmp_path / "index")
    for role in ("good_regions", "defect_regions"):
        assert np.array_equal(loaded.vectors[role].ids(), index.vectors[role].ids())
    query = _defect_grid(rng, np.full(DIM, 0.9), [(1, 1)])
    embeddings = Embeddings(query.mean(axis=(1, 2)), query)
    assert np.array_equal(anomaly_scores(loaded, embeddings)[0], anomaly_scores(index, embeddings)[0])


@pytest.mark.parametrize("mode", sorted(SCORING_MODES))
@pytest.mark.parametrize("with_defects", [False, True])
def test_every_mode_scores_the_same_without_maps(mode, with_defects):
    """maps=False lets a mode skip what only maps need (the patch modes: each patch's exact distance); the
    scores must not move. The good bank is large enough for the pruned search (4096 patches and more)."""
    rng = np.random.default_rng(4)
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode=mode, coreset_ratio=1.0)
    centres = 2.0 * rng.standard_normal((300, DIM))
    good = _grids(rng, centres)
    index.add([NewExemplar(f"g{i}") for i in range(len(good))], good.mean(axis=(1, 2)), good)
    if with_defects:
        defect = _grids(rng, 3.0 + rng.standard_normal((6, DIM)))
        index.add([NewExemplar(f"d{i}", "defect", "crack") for i in range(6)], defect.mean(axis=(1, 2)), defect)
    queries = _grids(rng, 2.0 * rng.standard_normal((12, DIM)))
    queries[::4, 1, 2] += 4.0  # an odd patch in some
    embeddings = Embeddings(queries.mean(axis=(1, 2)), queries)
    with_maps, maps = anomaly_scores(index, embeddings)
    without, lean_maps = anomaly_scores(index, embeddings, maps=False)
    np.testing.assert_allclose(without, with_maps, rtol=1e-5)
    assert (maps is None) == (mode == "image")
    if mode != "image" and not with_defects:
        assert lean_maps is None  # the saving: no patch's exact distance was needed but the largest


def test_a_known_defect_never_raises_the_map_where_the_good_only_map_is_low():
    """Issue 26/28: defect patches like the background once drew a box over the whole frame."""
    rng = np.random.default_rng(7)
    index = _index("patch", rng)
    defect_centre = np.full(DIM, 1.0)
    query = _defect_grid(rng, defect_centre * 0.9, [(2, 3)])
    embeddings = Embeddings(np.zeros((1, DIM), np.float32), query)
    before_scores, before_maps = anomaly_scores(index, embeddings)
    # a defect exemplar whose banked patches (given by its mask) are plain background
    background = _grids(rng, [np.zeros(DIM)])
    index.add([NewExemplar("d0", "defect")], np.full((1, DIM), 5.0, np.float32), background,
              masks=[np.ones(GRID, bool)])
    scores, maps = anomaly_scores(index, embeddings)
    low = before_maps[0] < 0.5 * before_scores[0]
    assert low.sum() >= GRID[0] * GRID[1] - 2
    assert np.array_equal(maps[0][low], before_maps[0][low])  # the background stays as the good-only map has it
    assert maps.max() <= scores[0]
