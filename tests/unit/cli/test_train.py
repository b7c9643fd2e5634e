"""`simsearch train` end to end on a tiny synthetic folder: train, build-index with the checkpoint, score."""

from typer.testing import CliRunner

from simsearch.cli.main import app
from simsearch.cli.output import EXIT_BAD_INPUT

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_an_unknown_level_is_a_one_line_error(part_folder, tmp_path):
    level = _run("train", "triplet-head", part_folder, "--level", "pixel", "--out", tmp_path / "r")
    assert level.exit_code == EXIT_BAD_INPUT and "--level" in level.stderr and "patch" in level.stderr
