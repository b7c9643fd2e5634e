"""Service settings, the token file, and `simsearch serve`'s refusals before it listens."""

from typer.testing import CliRunner

from simsearch.cli.main import app
from simsearch.cli.output import EXIT_BAD_INPUT, EXIT_INDEX


def test_serve_fails_in_one_line_before_listening(tmp_path, served_index):
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--index", str(tmp_path / "nowhere"), "--port", "0"])
    assert result.exit_code == EXIT_INDEX and result.stderr.strip().startswith("error:")
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["serve", "--index", str(served_index[1]), "--token-file", str(tmp_path / "none")])
    assert result.exit_code == EXIT_BAD_INPUT and "token file" in result.stderr
    result = runner.invoke(app, ["serve", "--index", str(served_index[1]), "--port", "70000"])
    assert result.exit_code == EXIT_BAD_INPUT and "--port" in result.stderr
