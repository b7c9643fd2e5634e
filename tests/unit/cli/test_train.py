"""`simsearch train` end to end on a tiny synthetic folder: train, build-index with the checkpoint, score."""


from simsearch.cli.output import EXIT_BAD_INPUT
from tests.cli_runner import run_cli


def test_an_unknown_level_is_a_one_line_error(part_folder, tmp_path):
    level = run_cli("train", "triplet-head", part_folder, "--level", "pixel", "--out", tmp_path / "r")
    assert level.exit_code == EXIT_BAD_INPUT and "--level" in level.stderr and "patch" in level.stderr
