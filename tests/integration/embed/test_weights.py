"""Pretrained weights offline: whatever torchvision's download raises, one line naming what to pass instead."""

from __future__ import annotations

from typer.testing import CliRunner

from simsearch.cli.main import app
from simsearch.cli.output import EXIT_WEIGHTS
from tests.unit.embed.test_weights import offline  # noqa: F401  (fixture)


def test_the_cli_names_weights_file_and_no_pretrained(offline, part_folder, tmp_path):  # noqa: F811
    result = CliRunner().invoke(app, ["build-index", str(part_folder / "good"), "--out", str(tmp_path / "index")])
    assert result.exit_code == EXIT_WEIGHTS, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or not any("Traceback" in line for line in lines)
    error = [line for line in lines if line.startswith("error:")]
    assert error and "--weights FILE" in error[0] and "--no-pretrained" in error[0], result.stderr
