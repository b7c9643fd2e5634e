"""Thresholds that hold with few defects: every compared method places its threshold on out-of-fold scores of
its training part (never on a test score), with the one few-defects rule (`enough_defects_for_f1`)."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.inspector import Inspector
from tests.conftest import write_parts


@pytest.mark.parametrize("mode", ["image", "patch", "contrast"])
def test_leave_one_out_scores_equal_an_index_built_without_the_exemplar(small_embedder, tmp_path, mode):
    """A defect exemplar scored with itself taken out of the defect stores scores as against an index that
    never held it, in every mode; so does a good exemplar scored with itself excluded, in the image and patch
    modes (the contrast mode's `exclude` path still counts the good in the defect coherence and in the other
    exemplars' regions: close, not equal). The index holds and scores the same after."""
    from simsearch.baselines.similarity import out_of_fold_scores
    from simsearch.data.datasets import discover_samples

    samples = discover_samples(write_parts(tmp_path / "parts", seed=3, n_good=8, n_defect=3))
    inspector = Inspector(small_embedder, mode=mode, coreset_ratio=1.0).fit(samples)
    test = write_parts(tmp_path / "test", seed=9, n_good=2, n_defect=2)
    before = inspector.score_samples(sorted(test.rglob("*.png")))
    kept, scores = out_of_fold_scores(inspector, samples)
    assert sorted(str(s.path) for s in kept) == sorted(str(s.path) for s in samples)
    by_path = dict(zip((str(s.path) for s in kept), scores))
    exact = [s for s in samples if s.is_defect or mode != "contrast"]
    for left_out in (exact[0], exact[-1]):
        others = [s for s in samples if s is not left_out]
        alone = Inspector(small_embedder, mode=mode, coreset_ratio=1.0).fit(others)
        assert by_path[str(left_out.path)] == pytest.approx(alone.score_samples([left_out.path])[0], rel=1e-4)
    counts = inspector.index_.counts()
    assert (counts["good"], counts["defect"]) == (8, 3)
    np.testing.assert_allclose(inspector.score_samples(sorted(test.rglob("*.png"))), before, rtol=1e-5)


def test_every_compared_threshold_is_placed_on_training_scores_only(tmp_path):
    """knn, probe and CAM: the images whose scores placed the threshold are the fold's training images
    (the whole part for kNN and the probe; CAM's carve-out), never a test image."""
    from simsearch.baselines.compare import CompareSettings, run_fold
    from simsearch.baselines.registry import build_baseline
    from simsearch.data.datasets import discover_samples
    from simsearch.data.splits import kfold_splits

    samples = discover_samples(write_parts(tmp_path / "parts", seed=5, n_good=16, n_defect=10))
    split = kfold_splits(samples, 2, seed=0)[0]
    train, test = {str(s.path) for s in split.train}, {str(s.path) for s in split.test}
    settings = CompareSettings(pretrained=False, image_size=64, epochs=1, batch_size=8, device="cpu",
                               probe_backbones=("resnet18",), cache_dir=None, seed=0)
    for name, whole in (("knn-patch", True), ("knn-image", True), ("probe", True), ("cam", False)):
        method = build_baseline(name, settings)
        fold = run_fold(method, split)
        used = set(method.threshold_paths_)
        assert used and used <= train and not used & test, name
        assert (used == train) == whole, name
        assert fold["threshold_basis"] == method.threshold_basis_ and fold["threshold_images"] == len(used)
        assert fold["oracle_f1"] is not None and fold["oracle_f1"] >= fold["f1"] - 1e-12
    assert method.threshold_basis_.startswith("carve-out")
