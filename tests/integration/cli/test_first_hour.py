"""Issue 12: what a new user hits in the first hour, through the CLI."""

import json

from tests.cli_runner import FAST, run_cli


def test_build_index_on_labelled_folder_indexes_defects_as_defects(part_folder, tmp_path):
    result = run_cli("build-index", part_folder, "--out", tmp_path / "index", *FAST)
    assert result.exit_code == 0, result.output
    assert "12 good, 4 defect exemplars (types: spot 4)" in " ".join(result.stdout.split())
    info = json.loads(run_cli("info", tmp_path / "index", "--json").stdout)
    assert info["counts"]["good"] == 12 and info["counts"]["defect"] == 4 and info["defect_types"] == {"spot": 4}


def test_evaluate_leaves_out_exemplars_and_says_so(part_folder, tmp_path):
    index = tmp_path / "index"
    assert run_cli("build-index", part_folder / "good", "--out", index, *FAST).exit_code == 0
    assert run_cli("calibrate", "--index", index, "--max-false-alarm", "0.1").exit_code == 0
    result = run_cli("evaluate", part_folder, "--index", index, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["left_out_exemplars"] == 12 and report["good"] == 0 and report["defect"] == 4
    assert {"recall", "false_alarm_rate", "precision"} <= set(report)
    table = run_cli("evaluate", part_folder, "--index", index)
    text = " ".join(table.output.split())
    assert "left out 12 image(s) that are exemplars of the index" in text
    assert "recall" in text and "false-alarm rate" in text and "precision" in text
    whole = tmp_path / "whole"
    assert run_cli("build-index", part_folder, "--out", whole, *FAST).exit_code == 0
    only_exemplars = run_cli("evaluate", part_folder, "--index", whole)
    assert only_exemplars.exit_code == 2
    assert only_exemplars.output.count("\n") == 1 and "every evaluation image is an exemplar" in only_exemplars.output


def test_skipped_inputs_are_json_records_and_a_distinct_exit_code(part_folder, tmp_path):
    from simsearch.errors import EXIT_CODES, EXIT_SKIPPED

    index = tmp_path / "index"
    assert run_cli("build-index", part_folder / "good", "--out", index, *FAST).exit_code == 0
    broken = part_folder / "defect" / "spot" / "zz_broken.png"
    broken.write_bytes(b"not an image")
    result = run_cli("score", part_folder / "defect", "--index", index, "--json")
    assert result.exit_code == EXIT_SKIPPED == 6 and 6 in EXIT_CODES
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    skipped = [row for row in rows if "error" in row]
    assert len(rows) == 5 and len(skipped) == 1
    assert skipped[0]["path"] == str(broken) and "not a readable image" in skipped[0]["error"]
    clean = run_cli("score", part_folder / "good", "--index", index, "--json")
    assert clean.exit_code == 0


def test_paths_work_from_another_working_folder(part_folder, fresh_parts, tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(part_folder.parent)  # relative arguments, as a user types them
    assert run_cli("build-index", "parts/good", "--out", "index", *FAST).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    scored = run_cli("score", fresh_parts / "defect", "--index", part_folder.parent / "index", "--json")
    assert scored.exit_code == 0, scored.output
    nearest = json.loads(scored.stdout.splitlines()[0])["nearest"][0]["path"]
    assert Path(nearest).is_absolute() and Path(nearest).is_file()

    monkeypatch.chdir(fresh_parts.parent)
    run_dir = tmp_path / "run"
    assert run_cli("evaluate", "fresh", "--index", part_folder.parent / "index", "--run-dir", run_dir).exit_code == 0
    run = json.loads((run_dir / "run.json").read_text())
    assert Path(run["data"]["dataset"]).is_absolute() and Path(run["setup"]["index"]).is_absolute()
    assert all(Path(row["path"]).is_file() for row in run["results"])
    monkeypatch.chdir(elsewhere)
    again = run_cli("report", run_dir / "run.json", "--out", elsewhere / "again.html")
    assert again.exit_code == 0, again.output
    assert "not found" not in (elsewhere / "again.html").read_text()


def test_heatmaps_before_calibration_share_the_index_scale(part_folder, tmp_path):
    import numpy as np
    from PIL import Image

    from simsearch.index import ExemplarIndex

    index = tmp_path / "index"
    assert run_cli("build-index", part_folder / "good", "--out", index, *FAST).exit_code == 0
    scale = ExemplarIndex.load(index).map_scale
    assert scale is not None and 0 < scale["low"] <= scale["high"] and scale["images"] == 12
    result = run_cli("score", part_folder / "good" / "00.png", part_folder / "defect", "--index", index,
                     "--heatmap", tmp_path / "maps")
    assert result.exit_code == 0, result.output
    assert "not calibrated: run simsearch calibrate" in " ".join(result.stdout.split())
    good = np.asarray(Image.open(tmp_path / "maps" / "good_00_overlay.png"), dtype=float)
    original = np.asarray(Image.open(part_folder / "good" / "00.png").convert("RGB"), dtype=float)
    # blended at alpha 0.45 with the jet colour map: red means heat = 255 in R, ~0 in B; a good part
    # stretched on its own has its own peak in red, on the index's scale it has no red area
    heat = (good - 0.55 * original) / 0.45
    red = (heat[:, :, 0] > 200) & (heat[:, :, 2] < 60)
    assert red.mean() < 0.01


def test_train_on_an_mvtec_category_uses_train_good_and_says_how_many(part_folder, tmp_path):
    import shutil

    category = tmp_path / "category"
    shutil.copytree(part_folder / "good", category / "train" / "good")
    (category / "test" / "good").mkdir(parents=True)
    for name in ("00.png", "01.png"):
        shutil.move(category / "train" / "good" / name, category / "test" / "good" / name)
    shutil.copytree(part_folder / "defect" / "spot", category / "test" / "spot")
    (category / "ground_truth").mkdir()
    result = run_cli("train", "triplet-ae", category, "--out", tmp_path / "run", "--epochs", "1", "--image-size", "32",
                     "--batch-size", "8", "--embedding-dim", "8", "--grayscale", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "images: good 12, spot 4" in result.stderr  # 10 from train/good + 2 from test/good


def test_resume_takes_model_settings_from_the_checkpoint(part_folder, tmp_path):
    run = tmp_path / "run"
    first = run_cli("train", "triplet-ae", part_folder, "--out", run, "--epochs", "1", "--image-size", "32",
                    "--batch-size", "8", "--embedding-dim", "8", "--grayscale", "--device", "cpu")
    assert first.exit_code == 0, first.output
    resumed = run_cli("train", "triplet-ae", part_folder, "--out", run, "--resume", "--epochs", "2",
                      "--batch-size", "8", "--device", "cpu", "--json")  # no model options: the checkpoint's
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["epochs_run"] == 1
    other = run_cli("train", "triplet-ae", part_folder, "--out", run, "--resume", "--epochs", "3", "--embedding-dim",
                    "16", "--device", "cpu")
    assert other.exit_code == 2 and "embedding_dim 8 (asked 16)" in other.stderr
