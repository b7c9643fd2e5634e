"""The CLI on shared and damaged index folders (issue 13 items 1, 10-17; issue 12 items 4, 13, 15): concurrent
writers lose nothing, replacing and duplicating need asking, damage is exit 3 or 4, never "(please report this)"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.cli_runner import FAST, run_cli
from tests.unit.cli.test_index_safety import _one_line_error

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def built(part_folder, tmp_path):
    index = tmp_path / "index"
    result = run_cli("build-index", part_folder / "good", "--out", index, *FAST)
    assert result.exit_code == 0, result.output
    return index


def _exemplars(index: Path) -> list[dict]:
    return json.loads(run_cli("info", index, "--exemplars", "--json").stdout)["exemplars"]


def test_concurrent_cli_adds_lose_nothing(built, part_folder, tmp_path):
    from tests.conftest import write_parts

    extra = write_parts(tmp_path / "extra", seed=9, n_good=2, n_defect=0) / "good"
    files = sorted(extra.iterdir())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "simsearch.cli.main", "add", str(built), "--json"]
    # Two writers at once (benchmarks/concurrent_writers.py runs more): on main one writer's exemplar was lost.
    acknowledged = []
    writers = [subprocess.Popen(command + [str(file)], env=env, cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for file in files]
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        acknowledged += json.loads(out)["added"]
    present = {e["id"]: e["path"] for e in _exemplars(built)}
    assert len(acknowledged) == len(set(acknowledged)) == 2 and set(acknowledged) <= set(present)
    assert {Path(present[i]).name for i in acknowledged} == {f.name for f in files}


def test_build_index_refuses_to_replace_an_index_without_force_and_ids_continue(built, part_folder):
    before = max(e["id"] for e in _exemplars(built))
    output = _one_line_error(run_cli("build-index", part_folder / "good", "--out", built, *FAST), 5)
    assert "already holds an index" in output and "--force" in output
    result = run_cli("build-index", part_folder / "good", "--out", built, "--force", *FAST)
    assert result.exit_code == 0, result.output
    assert min(e["id"] for e in _exemplars(built)) > before  # ids never restart


def test_adding_the_same_file_twice_is_skipped_unless_asked(built, part_folder):
    file = part_folder / "good" / "03.png"
    result = run_cli("add", built, file, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {
        "added": [], "label": "good", "type": None, "skipped_duplicates": [str(file)], "skipped": []}
    said = run_cli("add", built, file)
    assert said.exit_code == 0 and "skipped 1 file" in said.output and "--allow-duplicates" in said.output
    again = run_cli("add", built, file, "--allow-duplicates", "--json")
    assert again.exit_code == 0 and len(json.loads(again.stdout)["added"]) == 1


def test_remove_takes_a_repeated_id_once_and_unknown_ids_are_bad_input(built):
    result = run_cli("remove", built, "3", "3", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"removed": [3]}
    assert "999" in _one_line_error(run_cli("remove", built, "999"), 2)


def test_the_cli_cannot_remove_every_good_exemplar(built):
    ids = [str(e["id"]) for e in _exemplars(built)]
    assert "last good exemplar" in _one_line_error(run_cli("remove", built, *ids), 5)
    assert len(_exemplars(built)) == len(ids)


def test_a_negative_batch_size_is_refused(built, part_folder):
    score = run_cli("score", part_folder / "good" / "00.png", "--index", built, "--batch-size", "-1")
    output = _one_line_error(score, 2)
    assert "--batch-size" in output


def test_the_lock_wait_is_a_flag_and_a_busy_index_is_exit_5(built, part_folder):
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(built / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        output = _one_line_error(run_cli("remove", built, "1", "--wait", "0.2"), 5)
        assert "another writer" in output and "--wait" in output
    finally:
        holder.kill()
        holder.wait()


def test_damaged_catalogue_and_manifest_are_exit_3_naming_the_file(built):
    manifest = json.loads((built / "manifest.json").read_text())
    catalogue = built / manifest["files"]["catalogue"]
    catalogue.write_bytes(b"SQLite format 3\0" + bytes(100))
    assert catalogue.name in _one_line_error(run_cli("info", built), 3)
    (built / "manifest.json").write_text(json.dumps({**manifest, "dim": "wide"}))
    assert "manifest.json" in _one_line_error(run_cli("info", built), 3)
    (built / "manifest.json").write_text("{not json")
    assert "manifest.json" in _one_line_error(run_cli("info", built), 3)


def test_image_mode_info_shows_no_patch_settings_and_the_time_of_the_last_save(part_folder, tmp_path):
    index = tmp_path / "image-index"
    assert run_cli("build-index", part_folder / "good", "--out", index, "--mode", "image", *FAST).exit_code == 0
    output = run_cli("info", index).output
    assert "coreset" not in output and "patches" not in output
    saved = json.loads((index / "manifest.json").read_text())["updated"]
    assert json.loads(run_cli("info", index, "--json").stdout)["updated"] == saved


def test_a_pickled_weights_file_is_refused_plainly(part_folder, tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"conv1.weight": torch.zeros(1), "extra": Path("x")}, evil)
    output = _one_line_error(run_cli("build-index", part_folder / "good", "--out", tmp_path / "i", "--weights", evil,
                                     "--image-size", "64", "--device", "cpu"), 4)
    assert "refused" in output and "not a plain state dict" in output
    assert "weights_only" not in output and "arbitrary code" not in output
