"""After a line's folder moves (its data and its index together, or the data elsewhere), the index names its
exemplars' files where they are now: `nearest[].path`, `info --exemplars` and `remove --path` (issue 28)."""

import json
import os
import shutil

from tests.cli_runner import run_cli
from tests.integration.cli.test_cli import built  # noqa: F401  (fixture)


def test_moved_with_the_index_scores_and_removes_by_the_new_path(built, part_folder, tmp_path):  # noqa: F811
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(part_folder, moved / part_folder.name)
    shutil.move(built, moved / built.name)
    index, parts = moved / built.name, moved / part_folder.name
    result = run_cli("score", parts / "good" / "00.png", "--index", index, "--json")
    assert result.exit_code == 0, result.output
    nearest = json.loads(result.stdout.splitlines()[0])["nearest"]
    assert nearest and all(os.path.isfile(n["path"]) for n in nearest)
    result = run_cli("remove", "--index", index, "--path", parts / "good" / "03.png", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["removed"]) == 1
    info = json.loads(run_cli("info", index, "--exemplars", "--json").stdout)
    assert info["data_root"] == str(parts)
    assert all(os.path.isfile(e["path"]) for e in info["exemplars"])


def test_data_moved_elsewhere_is_named_with_data_root(built, part_folder, tmp_path):  # noqa: F811
    archive = tmp_path / "archive"
    shutil.move(part_folder, archive)
    result = run_cli("remove", "--index", built, "--path", archive / "good" / "03.png")
    assert result.exit_code == 2 and "no exemplar" in result.stderr  # nothing says where the data went
    result = run_cli("remove", "--index", built, "--path", archive / "good" / "03.png", "--data-root", archive,
                     "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["removed"]) == 1
    # the change saved the new root: later commands find the files without the flag
    info = json.loads(run_cli("info", built, "--exemplars", "--json").stdout)
    assert all(os.path.isfile(e["path"]) for e in info["exemplars"])
    result = run_cli("info", built, "--data-root", tmp_path / "nowhere")
    assert result.exit_code == 2 and "--data-root" in result.stderr
