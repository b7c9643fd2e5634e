"""User text in CLI output: Rich markup in defect types and paths prints as typed, never as styles or links,
and defect types over the length limit or with control characters are refused in one line."""

import pytest

from simsearch.cli.output import EXIT_BAD_INPUT


def test_a_missing_torch_in_the_scoring_only_install_is_one_line_that_says_what_to_do(capsys):
    """The scoring-only install has no torch: `score --no-compiled` there must not say "(please report this)"."""
    import typer

    from simsearch.cli.output import handle_errors

    error = ModuleNotFoundError("No module named 'torch'", name="torch")
    with pytest.raises(typer.Exit) as stopped:
        with handle_errors():
            raise error
    assert stopped.value.exit_code == EXIT_BAD_INPUT
    message = capsys.readouterr().err
    assert "scoring-only install" in message and "please report" not in message
