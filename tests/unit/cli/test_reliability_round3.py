"""Issue 29 item 5: hostile file names (ANSI/OSC escapes, very long names) in terminal output and overlay names."""

from __future__ import annotations

import io

import pytest

from simsearch.cli import output
from simsearch.report.overlay import overlay_name
from simsearch.score.results import Neighbour, ScoreResult

HOSTILE = "parts/\x1b]8;;http://evil\x07click\x1b]8;;\x07\x1b[2J\x9b31m.png"


def test_printable_writes_control_characters_as_escapes():
    assert output.printable("a\x1b[31mb\x07\x9b\x7fc\td\ne") == "a\\x1b[31mb\\x07\\x9b\\x7fc\td\ne"


@pytest.fixture
def captured(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(output, "console", output._Console(file=buffer, markup=False, width=160))
    return buffer


def test_the_score_table_never_prints_a_file_names_escapes_raw(captured):
    near = Neighbour(1, "good/\x1b[31mred.png", "good", None, 0.5)
    defect = Neighbour(2, "d.png", "defect", "\x1b]0;title\x07dent", 0.7)
    output.print_score_table([ScoreResult(HOSTILE, 1.0, [near], nearest_defect=defect)])
    text = captured.getvalue()
    assert not any(c in text for c in "\x1b\x07\x9b") and "\\x1b" in text


def test_info_and_warnings_never_print_escapes_raw(captured, capsys):
    output.console.print("plain " + HOSTILE)  # the console's own safety net
    output.warn("skipped " + HOSTILE)
    assert not any(c in captured.getvalue() + capsys.readouterr().err for c in "\x1b\x07\x9b")


def test_overlay_names_are_safe_short_and_unique():
    taken: set[str] = set()
    long_a, long_b = "x/" + "a" * 239 + "1.png", "x/" + "a" * 239 + "2.png"
    names = [overlay_name(path, number, taken) for number, path in
             enumerate([HOSTILE, long_a, long_b, "x/" + "a" * 239 + "1.png", "\x1b/\x1b.png"])]
    assert len(set(names)) == len(names)
    for name in names:
        assert name.isprintable() and "/" not in name and len(name.encode()) <= 200 and not name.startswith(".")
