"""Augmentation: the seed's 12 orientations cover the 8 symmetries of the square; jitter stays in range."""

import torch

from simsearch.train.augment import ORIENTATIONS, InspectionAugment, jitter, orient


def test_orientations_cover_the_eight_symmetries():
    image = torch.arange(16.0).view(1, 4, 4)
    variants = {tuple(orient(image, turns, flip).flatten().tolist()) for turns, flip in ORIENTATIONS}
    assert len(ORIENTATIONS) == 12 and len(variants) == 8
    assert torch.equal(orient(image, 0, None), image)


def test_jitter_is_clamped_and_identity_at_rest():
    image = torch.rand(2, 1, 8, 8)
    assert torch.allclose(jitter(image, 0.0, 1.0), image)
    bright = jitter(image, 0.9, 2.0)
    assert bright.min() >= 0 and bright.max() <= 1


def test_augment_is_seeded_and_keeps_shape():
    batch = torch.rand(5, 3, 16, 16)
    one = InspectionAugment()(batch, torch.Generator().manual_seed(4))
    two = InspectionAugment()(batch, torch.Generator().manual_seed(4))
    assert one.shape == batch.shape and torch.equal(one, two) and not torch.equal(one, batch)
