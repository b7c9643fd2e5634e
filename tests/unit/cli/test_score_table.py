"""The score table (issue 28): the score and the nearest exemplars' distances are labelled as the different
scales they are, and an image that is itself an exemplar of the index is marked."""

from simsearch.cli import output
from simsearch.index.catalogue import Exemplar
from simsearch.score.results import Neighbour, ScoreResult
from tests.cli.test_cli import _run, built  # noqa: F401  (fixture)


def _lines(text):
    return [line.rstrip() for line in text.splitlines()]


def test_an_exemplar_scored_is_marked_and_the_scales_are_named(built, part_folder, fresh_parts):  # noqa: F811
    result = _run("score", part_folder / "good" / "00.png", fresh_parts / "good" / "00.png", "--index", built)
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    assert max(len(line) for line in lines) <= 80
    marked = [line for line in lines if "00.png *" in line]
    assert len(marked) == 1 and "parts/" in marked[0]  # the index's own file, not the fresh one
    assert any(line.startswith("score: anomaly score (patch level") for line in lines)
    assert "nearest: exemplar file, whole-image vector distance (not the score's scale)" in lines
    assert any(line.startswith("*: is exemplar ") and "of the index (same file or vector)" in line for line in lines)


def test_the_mark_by_file_hash_and_by_distance_zero(tmp_path, capsys):
    image = tmp_path / "a.png"
    image.write_bytes(b"the same bytes")
    other = tmp_path / "b.png"
    other.write_bytes(b"other bytes")
    held = {7: Exemplar(7, "/elsewhere/a.png", "good", None, __import__("hashlib").sha256(b"the same bytes")
                        .hexdigest(), "")}
    near = Neighbour(3, "/x/good/01.png", "good", None, 0.0)
    far = Neighbour(4, "/x/good/02.png", "good", None, 0.4)
    results = [ScoreResult(str(image), 1.0, [far]), ScoreResult(str(other), 0.0, [near]),
               ScoreResult(str(tmp_path / "c.png"), 2.0, [far])]
    assert output.exemplars_scored(results, held) == {str(image): 7, str(other): 3}
    output.print_score_table(results, exemplars=held, image_mode=True)
    out = _lines(capsys.readouterr().out)
    assert sum(line.count(" *") for line in out if ".png" in line) == 2
    assert "score: mean distance to the nearest good exemplars, by whole-image vector" in out
    assert any(line.startswith("*: is exemplar 3, 7 of the index") for line in out)
    assert max(len(line) for line in out) <= 80
