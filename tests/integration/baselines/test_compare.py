"""compare's honesty: each method trains on the fold's training part only (checked on the file lists every
trainer receives), methods resolve from the registry, classifiers keep their best validation epoch and place
their threshold on validation images; methods with identical scores are named."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.baselines.compare import CompareSettings, compare
from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import discover_samples
from simsearch.data.splits import kfold_splits
from tests.conftest import write_parts


def settings(**changes) -> CompareSettings:
    return CompareSettings(**{"pretrained": False, "image_size": 64, "cnn_image_size": 32, "epochs": 2,
                              "batch_size": 8, "device": "cpu", "probe_backbones": ("resnet18",),
                              "cache_dir": None, "seed": 0, "options": {"triplet-head": {"epochs": 2}}, **changes})


def test_no_trainer_ever_sees_a_test_image(tmp_path, monkeypatch):
    """Every file list handed to a trainer, an index or a classifier lies inside the fold's training part."""
    import simsearch.train.tasks.triplet_ae as ae_task
    import simsearch.train.tasks.triplet_head as head_task
    from simsearch.baselines.classifier import ImageClassifier
    from simsearch.inspector import Inspector

    seen: list[tuple[str, set[str]]] = []

    def spy(owner, name, paths_of):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            seen.append((name, paths_of(*args, **kwargs)))
            return real(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)

    sample_paths = lambda samples, *a, **k: {str(s.path) for s in samples}  # noqa: E731
    spy(head_task, "train_triplet_head", sample_paths)
    spy(ae_task, "train_triplet_ae", sample_paths)
    spy(head_task, "read_samples", lambda samples, *a, **k: {str(s.path) for s in samples})
    spy(ImageClassifier, "fit_images", lambda self, images, labels, on_epoch=None, val_images=(), val_labels=():
        {str(p) for p in list(images) + list(val_images)})
    spy(Inspector, "fit", lambda self, good, *a, **k: {str(getattr(s, "path", s)) for s in good})
    spy(Inspector, "add", lambda self, images, *a, **k: {str(p) for p in images})

    samples = discover_samples(write_parts(tmp_path / "parts", seed=2, n_good=12, n_defect=8))
    splits = kfold_splits(samples, 2, seed=0)
    methods = ["knn-image", "triplet-head", "triplet-ae", "cam"]
    for split in splits:
        seen.clear()
        report = compare([split], methods, settings(options={"triplet-head": {"epochs": 2},
                                                             "triplet-ae": {"epochs": 1, "image_size": 32}}))
        assert list(report["methods"]) == methods
        train, test = {str(s.path) for s in split.train}, {str(s.path) for s in split.test}
        names = {name for name, _ in seen}
        assert {"train_triplet_head", "train_triplet_ae", "fit_images", "fit", "add"} <= names
        for name, paths in seen:
            assert paths and paths <= train and not paths & test, name
        trained_on = set().union(*(paths for name, paths in seen if name.startswith("train_triplet")))
        assert trained_on == train  # the whole training part, and only it


def test_a_classifier_keeps_its_lowest_validation_loss_epoch_and_a_validation_threshold(tmp_path):
    from simsearch.baselines.classifier import ImageClassifier
    from simsearch.baselines.registry import build_baseline
    from simsearch.baselines.thresholds import place_threshold
    from simsearch.data.splits import validation_split

    samples = discover_samples(write_parts(tmp_path / "parts", seed=4, n_good=16, n_defect=8))
    model = build_baseline("cnn", settings(epochs=6, patience=2, target_accuracy=1.1))
    assert isinstance(model, ImageClassifier)
    model.fit(samples)
    history = model.history_
    assert all("val_loss" in row for row in history)
    losses = [row["val_loss"] for row in history]
    assert model.best_epoch_ == history[int(np.argmin(losses))]["epoch"]
    assert len(history) == 6 or len(history) - model.best_epoch_ == 2  # patience 2 stops after 2 stale epochs
    _, held = validation_split(samples, 0.2, 0)
    probabilities = [r.score for r in model.score([s.path for s in held])]
    placed = place_threshold(np.array([int(s.is_defect) for s in held]), np.array(probabilities))
    assert model.threshold == pytest.approx(placed.value)  # 2 validation defects: the good-only quantile
    assert placed.policy == "good-only" and model.threshold_basis_ == "carve-out good-only"
    import torch
    import torch.nn.functional as F

    from simsearch.train.classifier import to_pixels
    with torch.no_grad():  # the weights the model holds give the lowest validation loss of the run
        logits = model.model_.eval()(to_pixels([s.path for s in held], model.image_size))
        loss = F.cross_entropy(logits, torch.tensor([int(s.is_defect) for s in held]),
                               weight=torch.tensor(model.train.class_weights, dtype=torch.float32))
    assert float(loss) == pytest.approx(min(losses), rel=1e-4)


def test_methods_with_identical_scores_are_named_in_the_report_and_csv(tmp_path):
    """knn-contrast with one defect exemplar per fold falls back to the patch mode: the report says the two
    are one method here; knn-image, which scores otherwise, is not in the group."""
    import csv

    from simsearch.baselines.compare import write_report

    samples = discover_samples(write_parts(tmp_path / "parts", seed=6, n_good=10, n_defect=2))
    splits = kfold_splits(samples, 2, seed=0)
    notes = []
    report = compare(splits, ["knn-patch", "knn-contrast", "knn-image"], settings(),
                     callbacks=Callbacks(note=notes.append))
    assert report["same_scores"] == [["knn-patch", "knn-contrast"]]
    assert report["methods"]["knn-contrast"]["same_as"] == "knn-patch"
    assert "same_as" not in report["methods"]["knn-image"] and "same_as" not in report["methods"]["knn-patch"]
    assert any("knn-contrast gave the same scores as knn-patch" in n for n in notes)
    for name in report["methods"]:
        summary = report["methods"][name]["summary"]
        assert summary["oracle_f1"]["mean"] is not None
        assert summary["threshold_basis"] == "leave-one-out good-only"  # one defect per fold: too few for F1
    _, csv_path = write_report(report, tmp_path / "out")
    rows = {r["method"]: r for r in csv.DictReader(open(csv_path))}
    assert rows["knn-contrast"]["same_as"] == "knn-patch" and rows["knn-patch"]["same_as"] == ""
    assert float(rows["knn-image"]["oracle_f1_mean"]) >= 0
