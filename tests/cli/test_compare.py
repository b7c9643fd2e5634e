"""`simsearch compare` end to end on a tiny synthetic set, `train-baseline`, and `score --model` output."""

import csv
import json

import pytest
from typer.testing import CliRunner

from simsearch.cli.main import app

runner = CliRunner()
FAST = ["--no-pretrained", "--image-size", "64", "--cnn-image-size", "64", "--epochs", "1", "--device", "cpu",
        "--probe-backbones", "resnet18"]


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def parts(part_folder):
    """part_folder with more defects, so that two folds each get some."""
    import numpy as np
    from PIL import Image

    from tests.conftest import part_image
    rng = np.random.default_rng(5)
    for i in range(4, 8):
        Image.fromarray(part_image(rng, defect=True)).save(part_folder / "defect" / "spot" / f"{i:02d}.png")
    return part_folder


def test_compare_writes_json_and_csv_for_every_method(parts, tmp_path):
    out = tmp_path / "cmp"
    methods = "knn-image,knn-patch,cnn,cam,probe,triplet-head"
    result = _run("compare", parts, "--methods", methods, "--folds", "2", "--out", out,
                  "--cache", tmp_path / "cache", *FAST)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "compare.json").read_text())
    ran = ["knn-image", "knn-patch", "cnn", "cam", "probe"]
    assert list(report["methods"]) == ran
    assert any("triplet-head" in note for note in report["notes"])  # no triplet embedder registered: a note
    for name in ran:
        folds = report["methods"][name]["folds"]
        assert len(folds) == 2 and sum(f["test_images"] for f in folds) == 20
        confusion = report["methods"][name]["summary"]["confusion"]
        assert sum(map(sum, confusion)) == 20 and confusion[1][0] + confusion[1][1] == 8
        assert 0 <= report["methods"][name]["summary"]["f1"]["mean"] <= 1
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert [r["method"] for r in rows] == ran and float(rows[0]["images_per_second_mean"]) > 0
    assert (out / "models" / "cam" / "fold1" / "baseline.json").is_file()
    assert (out / "models" / "knn-patch" / "fold2" / "manifest.json").is_file()
    assert "compare.json" in result.stdout


def test_score_with_a_saved_baseline_gives_knn_json_keys(parts, tmp_path):
    model = tmp_path / "cam"
    trained = _run("train-baseline", parts, "--method", "cam", "--out", model, *FAST[:-2])
    assert trained.exit_code == 0, trained.output
    index = tmp_path / "index"
    built = _run("build-index", parts / "good", "--out", index, "--no-pretrained", "--image-size", "64")
    assert built.exit_code == 0, built.output
    knn = _run("score", parts / "defect", "--index", index, "--json")
    baseline = _run("score", parts / "defect", "--model", model, "--json")
    assert baseline.exit_code == 0, baseline.output
    knn_rows = [json.loads(line) for line in knn.stdout.splitlines()]
    rows = [json.loads(line) for line in baseline.stdout.splitlines()]
    assert len(rows) == len(knn_rows) == 8
    assert [set(r) for r in rows] == [set(r) for r in knn_rows]
    for row in rows:
        assert 0.0 <= row["score"] <= 1.0 and row["nearest"] == [] and isinstance(row["is_anomaly"], bool)
        assert all(box["x1"] <= 64 and box["y1"] <= 64 for box in row["boxes"])


def test_score_model_errors_are_one_line(tmp_path, part_folder):
    result = _run("score", part_folder / "good" / "00.png", "--model", tmp_path)
    assert result.exit_code != 0 and result.stderr.startswith("error: ") and "baseline" in result.stderr
    result = _run("compare", part_folder, "--methods", "nope", *FAST)
    assert result.exit_code != 0 and result.stderr.startswith("error: ")
