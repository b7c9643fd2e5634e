"""compare's honesty: each method trains on the fold's training part only (checked on the file lists every
trainer receives), methods resolve from the registry, classifiers keep their best validation epoch and place
their threshold on validation images; methods with identical scores are named."""

from __future__ import annotations

import pytest

from simsearch.baselines.registry import baseline_names, resolve_methods
from simsearch.data.splits import kfold_splits
from simsearch.errors import UnknownComponentError


def test_methods_resolve_from_the_registry():
    assert resolve_methods("all") == list(baseline_names())
    assert resolve_methods(" cam, knn-patch ,cam") == ["cam", "knn-patch"]
    with pytest.raises(UnknownComponentError, match="nope") as error:
        resolve_methods("knn-patch,nope")
    assert "triplet-head" in error.value.hint and error.value.parameter == "methods"


def test_leave_one_type_out_never_gives_the_held_type_to_training(tmp_path):
    from simsearch.baselines.compare import held_out_types, hold_out_type
    from simsearch.data.datasets import Sample

    samples = [Sample(tmp_path / f"g{i}.png", "good") for i in range(12)] + [
        Sample(tmp_path / f"{t}{i}.png", "defect", defect_type=t) for t in ("crack", "spot") for i in range(6)]
    assert held_out_types(samples) == ["crack", "spot"]
    assert held_out_types([s for s in samples if s.defect_type != "spot"]) == []  # one type: nothing to hold out
    splits = kfold_splits(samples, 3, seed=0)
    held = hold_out_type(splits, "crack")
    assert [s.fold for s in held] == [s.fold for s in splits]
    for before, after in zip(splits, held):
        assert not any(s.defect_type == "crack" for s in after.train)
        assert {str(s.path) for s in after.train} == {str(s.path) for s in before.train if s.defect_type != "crack"}
        assert {s.defect_type for s in after.test if s.is_defect} == {"crack"}
        assert {str(s.path) for s in after.test if not s.is_defect} == {str(s.path) for s in before.test
                                                                         if not s.is_defect}


def test_the_report_shows_the_limit_and_the_subset_size():
    from simsearch.report.html import render_html
    from simsearch.report.run import comparison_run

    summary = {m: {"mean": 0.9, "std": 0.0} for m in ("image_auroc", "f1", "oracle_f1", "balanced_accuracy",
                                                       "train_seconds", "images_per_second")}
    report = {"data": "parts", "limit": 60, "subset": {"images": 60, "defect": 13},
              "splits": [{"fold": 1, "train": 40, "test": 20, "train_defect": 9, "test_defect": 4}],
              "methods": {"knn-patch": {"family": "similarity", "folds": [{}],
                                        "summary": {**summary, "threshold_basis": "leave-one-out f1"}}}}
    run = comparison_run(report)
    assert run["data"]["subset"] == "--limit 60: a stratified random subset of 60 images (13 defect)"
    assert run["comparison"]["rows"][0]["metrics"]["threshold"] == "leave-one-out f1"
    assert "oracle F1" in run["comparison"]["rows"][0]["metrics"]
    html = render_html(run)
    assert "--limit 60: a stratified random subset of 60 images (13 defect)" in html and "oracle F1" in html
