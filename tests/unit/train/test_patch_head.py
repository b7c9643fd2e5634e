"""The patch-level triplet head: patches mined from image-level labels (a defect image's patches least like
the good bank, or its mask's), trained on cached patch vectors; its embedder pools the projected patches."""

import numpy as np
import torch
from PIL import Image

from simsearch.data.datasets import Sample
from simsearch.train.tasks.triplet_head import HARD_FRACTION, PATCHES_PER_GOOD, mine_patches


def _grids(n_good, n_defect, size=6, dim=4, seed=0):
    """Good grids near 0; each defect grid holds one patch at 5 (the defect) among good ones."""
    rng = np.random.default_rng(seed)
    grids = rng.normal(0, 0.1, (n_good + n_defect, size, size, dim)).astype(np.float32)
    for row in range(n_good, n_good + n_defect):
        grids[row, row % size, 2] = 5.0
    samples = [Sample(f"g{i}.png", "good") for i in range(n_good)] + \
              [Sample(f"d{i}.png", "defect", "spot") for i in range(n_defect)]
    return samples, torch.from_numpy(grids), [0] * n_good + [1] * n_defect


def test_mining_takes_the_defect_patch_of_a_defect_image_and_random_plus_hard_patches_of_good_ones():
    samples, grids, labels = _grids(6, 3)
    vectors, mined, bank = mine_patches(samples, grids, labels, seed=0)
    per_image = 36
    n_hard = max(1, round(per_image * HARD_FRACTION))
    assert mined.count(0) == 6 * (n_hard + PATCHES_PER_GOOD) and mined.count(1) == 3 * n_hard
    defect_vectors = vectors[[n for n, label in enumerate(mined) if label == 1], 0]
    assert (defect_vectors.max(dim=1).values == 5.0).sum() == 3  # each defect image's defect patch was mined
    assert float(np.abs(bank).max()) < 1.0  # the bank holds good patches only


def test_a_mask_decides_which_patches_of_a_defect_image_are_defect_patches(tmp_path):
    samples, grids, labels = _grids(4, 1)
    mask = np.zeros((60, 60), np.uint8)
    mask[:8, :8] = 255  # inside the top-left patch only
    Image.fromarray(mask).save(tmp_path / "mask.png")
    samples[-1] = Sample("d0.png", "defect", "spot", tmp_path / "mask.png")
    vectors, mined, _ = mine_patches(samples, grids, labels, seed=0)
    assert mined.count(1) == 1
    assert torch.equal(vectors[mined.index(1), 0], grids[-1, 0, 0])
