"""triplet-patch as a compared method: trained on the fit samples only; with no labelled defects it is exactly the
frozen backbone's patch kNN."""

import gc
import shutil

import numpy as np

from simsearch.baselines import learned
from simsearch.baselines.learned import TripletPatchScorer
from simsearch.data.datasets import discover_samples
from simsearch.embed.backbone import BackboneEmbedder
from simsearch.inspector import Inspector
from simsearch.train.tasks.triplet_head import PATCH_FEATURES, train_triplet_head
from tests.conftest import write_parts


def _scorer(**options):
    return TripletPatchScorer(pretrained=False, image_size=64, epochs=2, batch_size=8, device="cpu", seed=0,
                              **options)


def test_without_defects_it_is_the_frozen_patch_knn_exactly(tmp_path):
    samples = [s for s in discover_samples(write_parts(tmp_path / "train", seed=1, n_good=10, n_defect=1))
               if not s.is_defect]
    test = sorted(p for p in write_parts(tmp_path / "test", seed=2, n_good=2, n_defect=2).rglob("*.png"))
    scorer = _scorer().fit(samples)
    assert scorer.head_checkpoint_ is None and isinstance(scorer.inspector_.embedder, BackboneEmbedder)
    frozen = Inspector(BackboneEmbedder("resnet18", image_size=64, pretrained=False, batch_size=8, device="cpu"),
                       mode="patch", coreset_ratio=0.1).fit(samples)
    assert [r.score for r in scorer.score(test)] == [r.score for r in frozen.score(test)]


def test_the_head_learns_from_the_fit_samples_only_and_defects_join_the_index(tmp_path, monkeypatch):
    fit = discover_samples(write_parts(tmp_path / "train", seed=3, n_good=10, n_defect=5))
    trained_on = []

    def recording(samples, *args, **kwargs):
        trained_on.extend(str(s.path) for s in samples)
        return train_triplet_head(samples, *args, **kwargs)

    monkeypatch.setattr(learned, "train_triplet_head", recording)
    scorer = _scorer().fit(fit)
    assert scorer.head_checkpoint_ is not None and scorer.inspector_.embedder.config["level"] == "patch"
    assert scorer.inspector_.embedder.config["joined"] is True  # the default: frozen patch vectors kept beside
    assert sorted(trained_on) == sorted(str(s.path) for s in fit)  # no test image was read for training
    run = scorer.head_checkpoint_.parent
    assert not (run / PATCH_FEATURES).exists()  # the cached grids go once the head is trained
    counts = scorer.inspector_.index_.counts()
    # 5 defects x 5% of an 8x8 patch grid (64 px), rounded
    assert counts["good"] == 10 and counts["defect"] == 5 and counts["defect_patches"] == 5 * 3
    # placed on the leave-one-out scores of all 15 (5 defects: enough for F1), not on a 20% carve-out's 1
    assert scorer.threshold_ is not None and scorer.threshold_.policy == "f1"
    assert sorted(scorer.threshold_paths_) == sorted(str(s.path) for s in fit)
    assert scorer.threshold_basis_ == "leave-one-out f1"
    scores = np.array([r.score for r in scorer.score([s.path for s in fit])])
    assert np.isfinite(scores).all()
    del scorer
    gc.collect()
    assert not run.exists()  # and the run folder goes with the scorer


def test_a_saved_triplet_patch_opens_after_its_folder_moved(tmp_path):
    fit = discover_samples(write_parts(tmp_path / "train", seed=4, n_good=8, n_defect=4))
    scorer = _scorer().fit(fit)
    images = [s.path for s in fit[:3]]
    expected = [r.score for r in scorer.score(images)]
    scorer.save(tmp_path / "saved")
    shutil.move(tmp_path / "saved", tmp_path / "moved")
    shutil.rmtree(scorer.head_checkpoint_.parent, ignore_errors=True)  # the training folder is gone too
    reopened = TripletPatchScorer.load(tmp_path / "moved", device="cpu")
    assert reopened.head_checkpoint_.parent == (tmp_path / "moved").resolve()
    assert np.allclose([r.score for r in reopened.score(images)], expected)
