"""`simsearch compare` end to end on a tiny synthetic set, `train-baseline`, and `score --model` output."""

import csv
import json

from tests.cli_runner import run_cli
from tests.unit.cli.test_compare import FAST, parts  # noqa: F401  (fixture)


def test_compare_all_writes_json_csv_run_and_report_for_every_method(parts, tmp_path):  # noqa: F811
    """--methods all: every registered method, trained per fold, with its family; then `simsearch report`."""
    from simsearch.baselines.registry import baseline_names, get_baseline

    out = tmp_path / "cmp"
    result = run_cli("compare", parts, "--methods", "all", "--folds", "2", "--out", out,
                     "--cache", tmp_path / "cache", "--option", "triplet-head.epochs=2", *FAST)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "compare.json").read_text())
    ran = list(baseline_names())
    assert list(report["methods"]) == ran and {"triplet-head", "triplet-ae", "knn-patch", "cam"} <= set(ran)
    for name in ran:
        assert report["methods"][name]["family"] == get_baseline(name).family
        folds = report["methods"][name]["folds"]
        assert len(folds) == 2 and sum(f["test_images"] for f in folds) == 20
        confusion = report["methods"][name]["summary"]["confusion"]
        assert sum(map(sum, confusion)) == 20 and confusion[1][0] + confusion[1][1] == 8
        assert 0 <= report["methods"][name]["summary"]["f1"]["mean"] <= 1
        assert all(f["threshold"] is not None for f in folds)
    assert report["methods"]["knn-patch"]["family"] == "similarity"
    assert report["methods"]["cam"]["family"] == "classifier"
    assert all(f["history"] and f["best_epoch"] for f in report["methods"]["triplet-head"]["folds"])
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert [r["method"] for r in rows] == ran and float(rows[0]["images_per_second_mean"]) > 0
    assert {r["family"] for r in rows} == {"similarity", "classifier"}
    assert (out / "models" / "cam" / "fold1" / "baseline.json").is_file()
    assert (out / "models" / "knn-patch" / "fold2" / "index" / "manifest.json").is_file()
    assert (out / "models" / "triplet-head" / "fold2" / "embedder.pt").is_file()
    assert "compare.json" in result.stdout and "run.json" in result.stdout
    scored = run_cli("score", parts / "defect", "--model", out / "models" / "triplet-head" / "fold1", "--json")
    assert scored.exit_code == 0, scored.output
    assert len(scored.stdout.splitlines()) == 8

    page = run_cli("report", out)
    assert page.exit_code == 0, page.output
    html = (out / "report.html").read_text()
    assert "Method comparison" in html and "similarity" in html and "classifier" in html
    assert "triplet-head, fold 1" in html and "cam, fold 2" in html  # per-fold training curves


def test_compare_learning_curve_is_in_json_table_and_report(parts, tmp_path):  # noqa: F811
    out = tmp_path / "curve"
    result = run_cli("compare", parts, "--methods", "knn-image,cam", "--folds", "2", "--out", out, "--curve",
                     "--curve-counts", "0,1,all", "--curve-repeats", "2", "--no-save-models", *FAST)
    assert result.exit_code == 0, result.output
    curve = json.loads((out / "compare.json").read_text())["curve"]
    assert curve["counts"] == ["0", "1", "all"] and curve["repeats"] == 2
    knn, cam = curve["methods"]["knn-image"], curve["methods"]["cam"]
    assert knn["family"] == "similarity" and cam["family"] == "classifier"
    assert len(knn["points"]["1"]["runs"]) == 4 and len(knn["points"]["0"]["runs"]) == 2  # 0 draws alike: once
    assert all(run["defects"] == 1 for run in knn["points"]["1"]["runs"])  # one type (spot): one defect
    assert knn["points"]["0"]["image_auroc"]["mean"] is not None  # kNN needs no defects
    assert cam["points"]["0"]["image_auroc"]["n"] == 0  # a classifier cannot train without defects
    assert "learning curve" in result.stdout
    assert run_cli("report", out).exit_code == 0
    assert "Learning curve" in (out / "report.html").read_text()


def test_train_baseline_writes_a_run_the_report_renders(parts, tmp_path):  # noqa: F811
    model = tmp_path / "cam"
    trained = run_cli("train-baseline", parts, "--method", "cam", "--out", model, "--epochs", "3", *FAST[:-2])
    assert trained.exit_code == 0, trained.output
    run = json.loads((model / "run.json").read_text())
    assert run["kind"] == "cam" and run["training"][0]["rows"][0]["val_loss"] >= 0
    assert run_cli("report", model).exit_code == 0
    assert "Training curves" in (model / "report.html").read_text()


def test_score_with_a_saved_baseline_gives_knn_json_keys(parts, tmp_path):  # noqa: F811
    model = tmp_path / "cam"
    trained = run_cli("train-baseline", parts, "--method", "cam", "--out", model, *FAST[:-2])
    assert trained.exit_code == 0, trained.output
    index = tmp_path / "index"
    built = run_cli("build-index", parts / "good", "--out", index, "--no-pretrained", "--image-size", "64")
    assert built.exit_code == 0, built.output
    knn = run_cli("score", parts / "defect", "--index", index, "--json")
    baseline = run_cli("score", parts / "defect", "--model", model, "--json")
    assert baseline.exit_code == 0, baseline.output
    knn_rows = [json.loads(line) for line in knn.stdout.splitlines()]
    rows = [json.loads(line) for line in baseline.stdout.splitlines()]
    assert len(rows) == len(knn_rows) == 8
    assert [set(r) for r in rows] == [set(r) for r in knn_rows]
    for row in rows:
        assert 0.0 <= row["score"] <= 1.0 and row["nearest"] == [] and isinstance(row["is_anomaly"], bool)
        assert all(box["x1"] <= 64 and box["y1"] <= 64 for box in row["boxes"])


def test_compare_next_command_prints_whole_on_a_narrow_terminal(parts, tmp_path):  # noqa: F811
    out = tmp_path / "a-rather-long-folder-name-for-the-comparison" / "of-the-second-shift-on-line-three"
    result = run_cli("compare", parts, "--methods", "knn-image", "--folds", "2", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    assert f"next: simsearch report {out}" in result.stdout.splitlines()
