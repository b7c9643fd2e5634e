"""Index kinds: every kind keeps ids through add/remove/save/load, reaches a recall floor against exact search
on clustered vectors, is chosen by size under auto, and a wrong kind is a one-line error."""

from typer.testing import CliRunner

from simsearch.cli.main import app
from simsearch.cli.output import EXIT_BAD_INPUT


def test_cli_wrong_index_kind_is_a_one_line_error_before_any_embedding(part_folder, tmp_path):
    result = CliRunner().invoke(app, ["build-index", str(part_folder / "good"), "--out", str(tmp_path / "idx"),
                                      "--no-pretrained", "--image-size", "64", "--device", "cpu",
                                      "--index-kind", "IVF64,PQ7"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "--index-kind" in result.stderr or "IVF64,PQ7" in result.stderr
    assert not (tmp_path / "idx").exists()
