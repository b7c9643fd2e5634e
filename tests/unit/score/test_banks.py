"""The patch bank's reduction of a small add (a click at the inspection station): the same greedy k-centre and
count as any add, on the new patches' exact distances to the bank, the rest of the bank untouched."""

import numpy as np

from simsearch.index import ExemplarIndex, NewExemplar
from simsearch.index.coreset import greedy_coreset_reference
from simsearch.index.roles import PATCH_ID_BITS
from simsearch.score import banks

DIM, GRID = 8, (4, 4)


def _index(rng, count):
    grids = rng.normal(0, 1, (count, *GRID, DIM)).astype(np.float32)
    index = ExemplarIndex(DIM, {"kind": "test"}, "fp", mode="patch", coreset_ratio=0.5)
    index.add([NewExemplar(f"{i}.png") for i in range(count)], grids.mean(axis=(1, 2)), grids)
    return index


def test_a_small_add_keeps_the_greedy_choice_on_exact_distances_to_the_bank():
    rng = np.random.default_rng(0)
    index = _index(rng, 30)
    bank = index.vectors["patches"]
    before, before_ids = bank.contents()
    new = (rng.normal(0, 1, (1, *GRID, DIM)) + np.linspace(0, 3, DIM)).astype(np.float32)
    assert banks.small_add(bank, new[0].size // DIM)
    flat = new.reshape(-1, DIM)
    exact = np.sqrt(((flat[:, None, :] - before[None]) ** 2).sum(-1)).min(1)
    expected = greedy_coreset_reference(flat, round(len(flat) * 0.5), initial=exact)
    [new_id] = index.add([NewExemplar("new.png")], new.mean(axis=(1, 2)), new)
    vectors, ids = bank.contents()
    added = (ids >> PATCH_ID_BITS) == new_id
    assert sorted((ids[added] & ((1 << PATCH_ID_BITS) - 1)).tolist()) == sorted(expected.tolist())
    assert np.array_equal(vectors[~added], before) and np.array_equal(ids[~added], before_ids)


def test_a_large_add_or_a_small_bank_takes_the_projected_coreset():
    rng = np.random.default_rng(1)
    index = _index(rng, 3)  # 24 patches banked: an add of 16 is not small next to it
    assert not banks.small_add(index.vectors["patches"], 16)
    assert not banks.small_add(index.vectors["patches"], banks.SMALL_ADD_PATCHES + 1)
