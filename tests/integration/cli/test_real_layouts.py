"""Issue 28 (no silent wrong answers on real folder layouts and thin calibration data) and issue 29 items
10, 11, 13, as a user meets them through the CLI."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from tests.conftest import ROOT
from tests.unit.cli.test_real_layouts import FAST, _one_line_error, tiles  # noqa: F401  (fixture)


def _ends_in_one_line_error(result) -> bool:
    """Warnings first (what was left out or skipped), then one error line."""
    lines = result.stderr.strip().splitlines()
    return lines[-1].startswith("error: ") and all(line.startswith("warning: ") for line in lines[:-1])


@pytest.fixture
def built(part_folder, tmp_path):
    index = tmp_path / "index"
    assert run_cli("build-index", part_folder / "good", "--out", index, *FAST).exit_code == 0
    return index


def test_build_index_on_a_labelled_folder_leaves_out_masks_and_unlabelled_folders(tiles, built, tmp_path):  # noqa: F811
    result = run_cli("build-index", tiles, "--out", tmp_path / "tiles_index", *FAST, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["good"], summary["defect"]) == (8, 3)  # not 8 + 11 masks + extra + uncertain
    left_out = {Path(entry["where"]).name: entry for entry in summary["left_out"]}
    assert left_out["ground_truth"]["count"] == 11 and "masks are labels" in left_out["ground_truth"]["reason"]
    assert left_out["extra"]["count"] == left_out["uncertain"]["count"] == 1
    table = run_cli("build-index", tiles, "--out", tmp_path / "again", *FAST)
    assert "left out 11 image(s) under" in table.stderr and "left out 1 image(s) under" in table.stderr
    # evaluate reads the folder as build-index does: masks are not parts
    evaluated = json.loads(run_cli("evaluate", tiles, "--index", built, "--json").stdout)
    assert (evaluated["good"], evaluated["defect"]) == (8, 3)


def test_score_a_folder_skips_mask_folders(tiles, built):  # noqa: F811
    rows = [json.loads(line) for line in run_cli("score", tiles, "--index", built, "--json").stdout.splitlines()]
    assert len(rows) == 13 and not any("ground_truth" in row["path"] for row in rows)


def test_calibrate_refuses_when_no_good_image_is_left(part_folder, built):
    # every good of the labelled set is an exemplar of the index and is left out: only defects remain
    result = run_cli("calibrate", part_folder, "--index", built)
    assert result.exit_code == 2 and _ends_in_one_line_error(result) and "needs good images" in result.stderr
    info = json.loads(run_cli("info", built, "--json").stdout)
    assert info.get("threshold") is None  # nothing stored


def test_calibrate_states_the_few_defects_rule(built, fresh_parts):
    result = run_cli("calibrate", fresh_parts, "--index", built)  # 8 goods, 4 defects
    assert result.exit_code == 0, result.output
    assert "why: 4 defects: too few for F1" in result.stdout
    assert "good-only at the strictest rate 8 goods allow (11.1%)" in result.stdout


def test_max_false_alarm_beyond_what_the_goods_allow_is_said(built, fresh_parts):
    labelled = run_cli("calibrate", fresh_parts, "--index", built, "--max-false-alarm", "0.01", "--json")
    assert labelled.exit_code == 0, labelled.output
    record = json.loads(labelled.stdout)
    assert record["target"] == pytest.approx(1 / 9) and "0.01 asked" in record["reason"]
    assert "warning: --max-false-alarm 0.01 needs more good images" in labelled.stderr
    # the README's first calibration (no defects yet) on an index of 12 goods: works, and says so
    readme = run_cli("calibrate", "--index", built, "--max-false-alarm", "0.01")
    assert readme.exit_code == 0, readme.output
    assert "strictest rate" in readme.stderr and "12 goods allow" in readme.stdout


def test_score_json_into_a_closed_pipe_exits_quietly(built, part_folder):
    process = subprocess.Popen([sys.executable, "-m", "simsearch.cli.main", "score", str(part_folder / "good"),
                                "--index", str(built), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    process.stdout.close()  # `| head -0`: the reader is gone before the first line
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) in (0, 141), stderr
    assert "Traceback" not in stderr and "please report" not in stderr and "BrokenPipe" not in stderr


def test_piped_runs_print_a_line_per_stage(part_folder, tmp_path, monkeypatch):
    from simsearch.cli import output

    monkeypatch.setattr(output, "PROGRESS_FIRST_LINE_S", 0.0)  # every stage counts as a long one here
    result = run_cli("build-index", part_folder / "good", "--out", tmp_path / "index", *FAST)
    assert result.exit_code == 0
    assert "embedding: done, 12/12 in " in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("embedding: ")]
    assert lines[-1].startswith("embedding: done") and len(lines) >= 2  # one as it starts, one at its end


def test_score_table_keeps_file_names_and_tells_folders_apart(built, part_folder, tmp_path):
    for line in ("lineA", "lineB"):
        (tmp_path / line / "good").mkdir(parents=True)
        shutil.copy(part_folder / "good" / "00.png", tmp_path / line / "good" / "00.png")
    (tmp_path / "defects_of_the_week").mkdir()
    shutil.copy(part_folder / "defect" / "spot" / "00.png", tmp_path / "defects_of_the_week" / "camera_1059.png")
    folders = [tmp_path / "lineA", tmp_path / "lineB", tmp_path / "defects_of_the_week"]
    result = run_cli("score", *folders, "--index", built)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    rows = [line for line in result.stdout.splitlines() if ".png" in line]
    assert any("lineA/" in row and "00.png" in row for row in rows)
    assert any("lineB/" in row and "00.png" in row for row in rows)
    assert any("camera_1059.png" in row for row in rows)


def test_every_index_command_takes_index_and_the_old_form_still_works(built, part_folder, tmp_path, monkeypatch):
    added = run_cli("add", part_folder / "defect", "--index", built, "--label", "defect", "--json")
    assert added.exit_code == 0, added.output
    ids = json.loads(added.stdout)["added"]
    assert json.loads(run_cli("info", "--index", built, "--json").stdout)["counts"]["defect"] == 4
    assert run_cli("remove", "--index", built, ids[0]).exit_code == 0
    assert run_cli("remove", built, ids[1]).exit_code == 0  # old form
    assert json.loads(run_cli("info", built, "--json").stdout)["counts"]["defect"] == 2
    bad = run_cli("remove", "--index", built, "seven")
    assert bad.exit_code == 2 and _one_line_error(bad)
    monkeypatch.chdir(tmp_path)
    missing = run_cli("score", part_folder / "good" / "00.png")
    assert missing.exit_code == 2 and _one_line_error(missing) and "--index" in missing.stderr
    shutil.copytree(built, tmp_path / "artifacts" / "index")
    default = run_cli("score", part_folder / "good" / "00.png", "--json")
    assert default.exit_code == 0 and "index: artifacts/index (the default" in default.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="file names as raw bytes")
def test_a_file_name_that_is_not_utf8_is_skipped_with_a_warning(part_folder, tmp_path):
    folder = tmp_path / "latin"
    shutil.copytree(part_folder / "good", folder)
    os.rename(folder / "00.png", os.fsdecode(bytes(folder) + b"/caf\xe9.png"))
    result = run_cli("build-index", folder, "--out", tmp_path / "index", *FAST, "--json")
    assert result.exit_code == 6, result.output  # done, on fewer inputs (errors.EXIT_SKIPPED)
    summary = json.loads(result.stdout)
    assert summary["good"] == 11 and "caf\\xe9.png" in summary["skipped"][0]["path"]
    assert "not valid UTF-8" in result.stderr
    added = run_cli("add", tmp_path / "index", os.fsdecode(bytes(folder) + b"/caf\xe9.png"))
    assert added.exit_code == 2 and _ends_in_one_line_error(added) and "caf\\xe9.png" in added.stderr
