import json

from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import discover_samples
from simsearch.evaluate.evaluation import evaluate_dataset
from simsearch.inspector import Inspector, calibrate_index, leave_one_out_scores


def test_leave_one_out_never_scores_an_exemplar_against_itself(small_embedder, part_folder):
    inspector = Inspector(small_embedder, mode="patch", coreset_ratio=1.0).fit(part_folder / "good")
    loo = leave_one_out_scores(inspector)
    plain = inspector.score_samples(part_folder / "good")
    # scored against itself an image is ~0 (float error only); left out, it lies clearly farther
    assert len(loo) == 12 and plain.max() < 0.05 and (loo > 5 * plain.max()).all()


def test_good_only_calibration_stores_a_threshold(small_embedder, part_folder, tmp_path):
    inspector = Inspector(small_embedder, mode="image").fit(part_folder / "good")
    calibration = calibrate_index(inspector, None, target=0.25)
    assert calibration.policy == "good-only" and inspector.index_.threshold["value"] == calibration.value
    inspector.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["threshold"]["policy"] == "good-only"
    results = inspector.score(part_folder / "defect")
    assert all(r.is_anomaly is not None and 0 <= r.normalised_score <= 1 for r in results)


def test_calibration_leaves_out_exemplars_and_evaluate_reports_confusion(small_embedder, part_folder):
    first_six = sorted((part_folder / "good").glob("*"))[:6]
    inspector = Inspector(small_embedder, mode="patch", coreset_ratio=0.5).fit(first_six)
    samples = discover_samples(part_folder)
    warnings = []
    calibrate_index(inspector, samples, "f1", callbacks=Callbacks(note=warnings.append))
    assert warnings and "left out 6" in warnings[0]
    evaluation = evaluate_dataset(inspector, samples)  # the 6 exemplars are left out here too
    assert evaluation.confusion is not None and sum(map(sum, evaluation.confusion)) == 10
    assert evaluation.to_dict()["left_out_exemplars"] == 6
