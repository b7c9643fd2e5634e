"""Issue 12: what a new user hits in the first hour, through the CLI."""

import json
import os

import pytest
from typer.testing import CliRunner

from simsearch.cli.main import app

runner = CliRunner()
FAST = ["--no-pretrained", "--image-size", "64", "--device", "cpu"]


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_build_index_on_labelled_folder_indexes_defects_as_defects(part_folder, tmp_path):
    result = _run("build-index", part_folder, "--out", tmp_path / "index", *FAST)
    assert result.exit_code == 0, result.output
    assert "12 good, 4 defect exemplars (types: spot 4)" in " ".join(result.stdout.split())
    info = json.loads(_run("info", tmp_path / "index", "--json").stdout)
    assert info["counts"]["good"] == 12 and info["counts"]["defect"] == 4 and info["defect_types"] == {"spot": 4}
