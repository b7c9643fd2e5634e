"""`simsearch relabel`, and `add` of a file the index holds under another label (issue 28, item 9)."""

import json
import os

from simsearch.errors import ConflictError, InputError
from simsearch.index.persist import load_index
from tests.cli_runner import FAST, run_cli
from tests.integration.cli.test_cli import built  # noqa: F401  (fixture)


def _held(index, path):
    return next(e for e in load_index(index).exemplars.values() if e.path == os.path.abspath(path))


def _info(index):
    return json.loads(run_cli("info", index, "--json").stdout)


def test_relabel_good_to_defect_and_back(built, part_folder):  # noqa: F811
    image = part_folder / "good" / "01.png"
    old = _held(built, image)
    result = run_cli("relabel", old.id, "--label", "defect", "--type", "dent", "--index", built)
    assert result.exit_code == 0, result.output
    new = _held(built, image)
    assert new.id != old.id and (new.label, new.defect_type) == ("defect", "dent")
    assert f"{old.id} -> {new.id}" in result.stdout
    info = _info(built)
    assert (info["counts"]["good"], info["counts"]["defect"]) == (11, 5)
    assert info["defect_types"]["dent"] == 1
    assert old.id not in load_index(built).exemplars

    back = run_cli("relabel", new.id, "--label", "good", "--index", built, "--json")
    assert back.exit_code == 0, back.output
    moved = json.loads(back.stdout)
    assert moved["old"]["id"] == new.id and moved["new"]["label"] == "good" and moved["new"]["id"] > new.id
    info = _info(built)
    assert (info["counts"]["good"], info["counts"]["defect"]) == (12, 4) and "dent" not in info["defect_types"]
    assert _held(built, image).id == moved["new"]["id"]


def test_add_of_a_file_held_under_another_label_names_relabel(built, part_folder):  # noqa: F811
    image = part_folder / "good" / "01.png"
    held = _held(built, image)
    result = run_cli("add", image, "--index", built, "--label", "defect", "--type", "dent")
    assert result.exit_code == 0, result.output
    assert f"exemplar {held.id} (good)" in result.stderr
    assert f"simsearch relabel {held.id} --label defect --type dent --index {built}" in result.stderr
    as_json = json.loads(run_cli("add", image, "--index", built, "--label", "defect", "--json").stdout)
    assert as_json["added"] == [] and as_json["held_otherwise"][0]["id"] == held.id
    both = run_cli("add", image, "--index", built, "--label", "defect", "--allow-duplicates")
    assert both.exit_code == ConflictError.exit_code, both.output
    assert "relabel" in both.output and len(load_index(built).exemplars) == 16


def test_relabel_refuses_a_missing_file_and_the_last_good(built, part_folder, tmp_path):  # noqa: F811
    image = part_folder / "good" / "02.png"
    held = _held(built, image)
    image.unlink()
    result = run_cli("relabel", held.id, "--label", "defect", "--index", built)
    assert result.exit_code == InputError.exit_code, result.output
    assert "is not there" in result.output and "Traceback" not in result.output
    assert load_index(built).exemplars[held.id].label == "good"

    only = tmp_path / "one"
    assert run_cli("build-index", part_folder / "good" / "00.png", "--out", only, "--k", "1", *FAST).exit_code == 0
    (single,) = load_index(only).exemplars.values()
    refused = run_cli("relabel", single.id, "--label", "defect", "--index", only)
    assert refused.exit_code == ConflictError.exit_code, refused.output
    assert "last good" in refused.output
