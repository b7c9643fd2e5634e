"""Issue 12: what a new user hits in the first hour, through the CLI."""

import pytest

from simsearch.cli.main import app
from tests.cli_runner import run_cli


@pytest.mark.parametrize("args", [["score", "--bogus", "x"], ["score"], ["build-index", "x", "--k", "abc"],
                                  ["train", "triplet-ae", "--bogus"], ["nosuch"]])
def test_usage_errors_are_one_line(args):
    result = run_cli(*args)
    assert result.exit_code == 2
    assert result.stdout == "" and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "--help" in result.stderr and "╭" not in result.stderr


def test_help_and_version():
    from importlib.metadata import version
    from pathlib import Path

    import tomllib

    import simsearch

    assert run_cli("score", "--help").exit_code == 0 and "--index" in run_cli("score", "--help").stdout
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout == f"simsearch {version('simsearch')}\n"
    pyproject = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == simsearch.__version__ == "0.2.0"


def _all_commands(group, path=()):
    import typer.main

    command = typer.main.get_command(group) if not hasattr(group, "params") else group
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _all_commands(sub, path + (name,))


def test_every_option_explains_itself():
    missing = []
    for path, command in _all_commands(app):
        for param in command.params:
            text = getattr(param, "help", None) or ""
            if not text.strip():  # options and arguments alike
                missing.append(f"{' '.join(path)} {param.opts[0]}")
            if "seed 0" in text.lower():  # the write-ups' numbering means nothing to a user
                missing.append(f"{' '.join(path)} {param.opts[0]}: 'seed 0..' jargon")
    assert missing == []


def test_score_table_fits_80_columns_and_keeps_the_end_of_names(monkeypatch):
    from rich.console import Console

    from simsearch.cli import output
    from simsearch.score.results import Neighbour, ScoreResult

    console = Console(width=80, record=True, markup=False)
    monkeypatch.setattr(output, "console", console)
    nearest = Neighbour(3, "/data/a_very_long_folder_name_of_good_parts/good_part_photo_000123.png", "good", None,
                        0.123)
    defect = Neighbour(9, "/d/x.png", "defect", "contamination_with_a_long_name", 0.456)
    results = [ScoreResult(f"/data/line_7/{kind}/camera_left_2026_12_06_{i:04d}.png", 1.2345, [nearest], defect,
                           0.61, True) for i, kind in enumerate(("broken_large", "good"))]
    output.print_score_table(results)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "0000.png" in text and "0001.png" in text  # the ends that tell the images apart
    assert "3.png 0.123" in text and "0.456" in text and "nearest defect" in text


def test_overlay_names_never_collide():
    from simsearch.report.overlay import overlay_name

    taken = set()
    names = [overlay_name(path, number, taken) for number, path in
             enumerate(["/a/test/good/000.png", "/b/val/good/000.png", "/a/test/crack/000.png", None])]
    assert len(set(names)) == 4 and names[0] == "good_000_overlay.png" and names[1] == "good_000_00001_overlay.png"
