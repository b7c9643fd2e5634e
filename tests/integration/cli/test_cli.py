"""The CLI as a user runs it: commands, JSON output, exit codes and one-line errors."""

import json

import pytest

from simsearch.cli.output import EXIT_BAD_INPUT, EXIT_INDEX
from tests.cli_runner import FAST, run_cli


@pytest.fixture
def built(part_folder, tmp_path):
    index = tmp_path / "index"
    result = run_cli("build-index", part_folder / "good", "--defects", part_folder / "defect", "--mode", "patch",
                     "--out", index, *FAST)
    assert result.exit_code == 0, result.output
    return index


def test_build_index_with_defects_chooses_the_open_set_mode_and_says_why(part_folder, tmp_path):
    result = run_cli("build-index", part_folder / "good", "--defects", part_folder / "defect", "--out",
                     tmp_path / "index", *FAST)
    assert result.exit_code == 0, result.output
    assert "mode open-set: 4 labelled defect(s) given" in result.stderr
    info = json.loads(run_cli("info", tmp_path / "index", "--json").stdout)
    assert info["mode"] == "open-set" and info["counts"]["defect_residuals"] == 4
    assert set(info["defect_weight"]) >= {"weight", "direction_weight", "reason"}
    plain = run_cli("build-index", part_folder / "good", "--out", tmp_path / "plain", "--json", *FAST)
    summary = json.loads(plain.stdout)
    assert summary["mode"] == "patch" and summary["mode_reason"].startswith("no labelled defects")


def test_build_score_json_info_add_remove(built, part_folder):
    result = run_cli("score", part_folder / "defect", part_folder / "good" / "00.png", "--index", built, "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 5
    assert {"path", "score", "is_anomaly", "nearest"} <= set(rows[0])
    assert rows[0]["is_anomaly"] is None and isinstance(rows[0]["score"], float)
    assert {"path", "label", "distance"} <= set(rows[0]["nearest"][0])
    assert rows[0]["nearest_defect"]["type"] == "spot"

    info = json.loads(run_cli("info", built, "--json").stdout)
    assert info["counts"] == {"good": 12, "defect": 4, "patches": info["counts"]["patches"],
                              "defect_patches": info["counts"]["defect_patches"]}
    # the defects' patches least like good are banked: 4 defects x 5% of an 8x8 grid (64 px, layer2), rounded
    assert info["counts"]["defect_patches"] == 4 * 3

    from PIL import Image  # a new file (a good one held as good cannot also be a defect: see test_relabel.py)
    Image.open(part_folder / "good" / "01.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
        part_folder / "dent.png")
    added = run_cli("add", built, part_folder / "dent.png", "--label", "defect", "--type", "dent", "--json")
    assert added.exit_code == 0, added.output
    new_id = json.loads(added.stdout)["added"][0]
    assert json.loads(run_cli("info", built, "--json").stdout)["defect_types"]["dent"] == 1
    assert run_cli("remove", built, new_id).exit_code == 0
    assert "dent" not in json.loads(run_cli("info", built, "--json").stdout)["defect_types"]


def test_evaluate_prints_auroc(built, fresh_parts):
    result = run_cli("evaluate", fresh_parts, "--index", built, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["good"] == 8 and report["defect"] == 4 and 0.0 <= report["image_auroc"] <= 1.0


@pytest.mark.parametrize("case", ["missing", "empty", "no_images", "corrupt"])
def test_bad_inputs_give_one_line_errors(case, tmp_path):
    target = tmp_path / "input"
    if case != "missing":
        target.mkdir()
    if case == "no_images":
        (target / "notes.txt").write_text("hi")
    if case == "corrupt":
        target = tmp_path / "only.png"
        target.write_bytes(b"junk")
    result = run_cli("build-index", target, "--out", tmp_path / "idx", *FAST)
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "idx").exists()


def test_corrupt_file_in_folder_is_skipped_with_a_warning(part_folder, tmp_path):
    (part_folder / "good" / "zz_broken.png").write_bytes(b"junk")
    result = run_cli("build-index", part_folder / "good", "--out", tmp_path / "idx", *FAST)
    assert result.exit_code == 6  # done, on fewer inputs than given (errors.EXIT_SKIPPED)
    assert "warning: skipped" in result.stderr and "zz_broken.png" in result.stderr


def test_index_of_another_embedder_is_refused(built, part_folder):
    import shutil

    from simsearch.index import ExemplarIndex
    index = ExemplarIndex.load(built)
    index.embedder_config = {**index.embedder_config, "image_size": 96}  # a different embedder's vectors
    shutil.rmtree(built)
    index.save(built)
    result = run_cli("score", part_folder / "good" / "00.png", "--index", built)
    assert result.exit_code == EXIT_INDEX and "another embedder" in result.stderr


def test_missing_index_and_unwritable_output(part_folder, tmp_path):
    result = run_cli("score", part_folder / "good" / "00.png", "--index", tmp_path / "nope")
    assert result.exit_code == EXIT_INDEX and "build-index" in result.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("build-index", part_folder / "good", "--out", blocker / "idx", *FAST)
    assert result.exit_code != 0 and result.stderr.startswith("error: ")


def test_failed_add_leaves_index_unchanged(built, tmp_path):
    before = (built / "manifest.json").read_text()
    (tmp_path / "bad.png").write_bytes(b"junk")
    result = run_cli("add", built, tmp_path / "bad.png")
    assert result.exit_code == EXIT_BAD_INPUT
    assert (built / "manifest.json").read_text() == before


def test_calibrate_then_score_gives_verdicts_boxes_and_overlays(built, part_folder, fresh_parts, tmp_path):
    result = run_cli("calibrate", fresh_parts, "--index", built, "--target-recall", "1.0", "--json")
    assert result.exit_code == 0, result.output
    threshold = json.loads(result.stdout)
    assert threshold["policy"] == "target-recall" and threshold["metrics"]["recall"] == 1.0
    overlays = tmp_path / "overlays"
    result = run_cli("score", part_folder / "defect", "--index", built, "--json", "--heatmap", overlays)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(isinstance(r["is_anomaly"], bool) and 0.0 <= r["normalised_score"] <= 1.0 for r in rows)
    assert all(set(b) == {"x0", "y0", "x1", "y1", "score"} for r in rows for b in r["boxes"])
    assert sorted(p.name for p in overlays.iterdir()) == [f"spot_{i:02d}_overlay.png" for i in range(4)]


def test_policy_that_cannot_be_met_is_an_error(built, fresh_parts, tmp_path):
    import shutil
    shutil.copytree(fresh_parts / "good", tmp_path / "only" / "good")
    result = run_cli("calibrate", tmp_path / "only", "--index", built, "--target-recall", "0.9")
    assert result.exit_code == EXIT_BAD_INPUT and "needs defect images" in result.stderr


def test_good_only_calibration_without_a_folder(built):
    result = run_cli("calibrate", "--index", built, "--max-false-alarm", "0.1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["policy"] == "good-only"


def test_info_of_a_contrast_index_shows_how_far_it_trusts_the_ratio(part_folder, tmp_path):
    index = tmp_path / "contrast"
    result = run_cli("build-index", part_folder / "good", "--defects", part_folder / "defect", "--mode", "contrast",
                     "--out", index, *FAST)
    assert result.exit_code == 0, result.output
    info = json.loads(run_cli("info", index, "--json").stdout)
    assert info["mode"] == "contrast" and 0.0 <= info["defect_coherence"] <= 1.0
    assert "defect coherence" in run_cli("info", index).stdout


def test_score_with_the_compiled_embedder_never_imports_torch(built, fresh_parts):
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import runpy, sys\n"
            f"sys.argv = ['simsearch', 'score', {str(fresh_parts / 'defect')!r}, '--index', {str(built)!r}, '--json']\n"
            "try:\n    runpy.run_module('simsearch.cli.main', run_name='__main__')\n"
            "except SystemExit as done:\n    assert not done.code, done.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    expected = [json.loads(line) for line in run_cli("score", fresh_parts / "defect", "--index", built, "--json",
                                                     "--no-compiled").stdout.splitlines()]
    assert [r["path"] for r in rows] == [r["path"] for r in expected] and len(rows) == 4
    assert all(abs(a["score"] - b["score"]) <= 1e-3 * max(r["score"] for r in expected)
               for a, b in zip(rows, expected))


def test_info_says_when_exemplars_changed_after_the_threshold(built, fresh_parts):
    """add/remove after calibrate: the threshold was set on an earlier generation, and `info` says so."""
    assert run_cli("calibrate", "--index", built, "--max-false-alarm", "0.1").exit_code == 0
    calibrated = json.loads(run_cli("info", built, "--json").stdout)
    assert calibrated["threshold"]["generation"] == calibrated["generation"]
    assert "calibrated on generation" not in run_cli("info", built).stdout
    added = run_cli("add", built, fresh_parts / "good" / "00.png", "--label", "good")
    assert added.exit_code == 0, added.output
    text = " ".join(run_cli("info", built).stdout.replace("│", " ").split())  # the table wraps its cells
    assert f"calibrated on generation {calibrated['generation']}, the index is at {calibrated['generation'] + 1}" \
        in text and "simsearch calibrate" in text
    assert run_cli("calibrate", "--index", built, "--max-false-alarm", "0.1").exit_code == 0
    assert "calibrated on generation" not in run_cli("info", built).stdout


def test_export_is_a_command_and_build_index_exports_unless_told_not_to(part_folder, tmp_path):
    import json

    plain = tmp_path / "plain"
    result = run_cli("build-index", part_folder / "good", "--out", plain, "--no-compile", *FAST)
    assert result.exit_code == 0, result.output
    assert not list(plain.glob("*.onnx"))
    result = run_cli("add", plain, part_folder / "defect" / "spot" / "00.png", "--label", "defect")
    assert result.exit_code == 0, result.output
    assert not list(plain.glob("*.onnx"))  # adding exports nothing
    result = run_cli("export", plain, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["index"] == str(plain) and record["format"] == "onnx" and record["max_difference"] < 1e-3
    assert len(list(plain.glob("embedder-*.onnx"))) == 1
    result = run_cli("export", "--index", tmp_path / "missing")
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
