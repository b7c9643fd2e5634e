"""The score table (issue 28): the score and the nearest exemplars' distances are labelled as the different
scales they are, and an image that is itself an exemplar of the index is marked."""

from simsearch.cli import output
from simsearch.index.catalogue import Exemplar
from simsearch.score.results import Neighbour, ScoreResult


def _lines(text):
    return [line.rstrip() for line in text.splitlines()]


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
