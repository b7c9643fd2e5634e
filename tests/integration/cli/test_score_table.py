"""The score table (issue 28): the score and the nearest exemplars' distances are labelled as the different
scales they are, and an image that is itself an exemplar of the index is marked."""

from tests.cli_runner import run_cli
from tests.integration.cli.test_cli import built  # noqa: F401  (fixture)
from tests.unit.cli.test_score_table import _lines


def test_an_exemplar_scored_is_marked_and_the_scales_are_named(built, part_folder, fresh_parts):  # noqa: F811
    result = run_cli("score", part_folder / "good" / "00.png", fresh_parts / "good" / "00.png", "--index", built)
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    assert max(len(line) for line in lines) <= 80
    marked = [line for line in lines if "00.png *" in line]
    assert len(marked) == 1 and "parts/" in marked[0]  # the index's own file, not the fresh one
    assert any(line.startswith("score: anomaly score (patch level") for line in lines)
    assert "nearest: exemplar file, whole-image vector distance (not the score's scale)" in lines
    assert any(line.startswith("*: is exemplar ") and "of the index (same file or vector)" in line for line in lines)
