"""Type accuracy in `evaluate` (issue 28): only defects of a type the index holds count, and what is left out is
said, in --json and in the terminal."""

from pathlib import Path

from simsearch.data.datasets import Sample
from simsearch.evaluate.evaluation import evaluate_results
from simsearch.score.results import ScoreResult


def _case():
    rows = [("good", None, None), ("defect", "crack", "crack"), ("defect", "crack", "dent"),
            ("defect", "crack", None), ("defect", "dent", "dent"), ("defect", "hole", "crack"),
            ("defect", "hole", None), ("defect", None, "dent")]
    samples = [Sample(Path(f"{n}.png"), label, kind) for n, (label, kind, _) in enumerate(rows)]
    results = [ScoreResult(f"{n}.png", float(n), [], predicted_type=predicted)
               for n, (_, _, predicted) in enumerate(rows)]
    return samples, results


def test_a_type_the_index_does_not_hold_is_left_out_and_said():
    samples, results = _case()
    metrics = evaluate_results(samples, results, known_types={"crack", "dent"}).to_dict()
    # crack right, crack as dent, dent right: 2 of 3 given a type; the hole defects cannot be named by this index
    assert metrics["type_accuracy"] == 2 / 3 and metrics["typed_defects"] == 3
    assert metrics["type_counts"] == {"right": 2, "predicted": 3, "no_prediction": 1, "type_not_in_index": 2}
    assert metrics["unknown_types"] == ["hole"]


def test_an_index_without_defect_types_measures_none():
    samples, results = _case()
    assert "type_counts" not in evaluate_results(samples, results, known_types=set()).to_dict()
    every = evaluate_results(samples, results).to_dict()  # a scorer that does not say: every type counts
    assert every["type_counts"]["type_not_in_index"] == 0 and every["typed_defects"] == 4


def test_the_terminal_says_it_and_what_was_not_counted(capsys):
    from simsearch.cli.output import print_evaluation

    samples, results = _case()
    print_evaluation(evaluate_results(samples, results, threshold=3.5, known_types={"crack", "dent"}))
    out = capsys.readouterr().out
    assert "defect type named right: 0.667 (2/3 defects given a type)" in out
    assert "1 defect(s) given no type" in out
    assert "2 defect(s) of types the index holds no exemplar of (hole)" in out
    assert max(len(line) for line in out.splitlines()) <= 80
