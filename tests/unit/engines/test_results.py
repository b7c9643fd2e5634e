"""Score results written to a file: JSON lines are the `score --json` records, Parquet the same keys as
columns; a failed run leaves no file under the name asked for."""

from __future__ import annotations

import json

import pytest

from simsearch.engines.results import ResultsWriter, check_results_format
from simsearch.errors import InputError
from simsearch.score.results import Box, Neighbour, ScoreResult


def results() -> list[ScoreResult]:
    good = Neighbour(3, "good/a.png", "good", None, 0.25)
    defect = Neighbour(7, "defect/b.png", "defect", "crack", 0.5)
    return [ScoreResult("x.png", 1.5, [good], defect, 0.75, True, boxes=[Box(1, 2, 3, 4, 0.9)],
                        predicted_type="crack"),
            ScoreResult("y[/].png", 0.125, [good, good], None, None, None)]


def test_jsonl_holds_the_json_records(tmp_path):
    path = tmp_path / "out" / "scores.jsonl"
    with ResultsWriter(path, "jsonl") as writer:
        for result in results():
            writer.write(result)
    assert writer.count == 2
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [r.to_dict() for r in results()]


def test_parquet_has_the_same_keys_as_columns(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install simsearch[ray])")
    path = tmp_path / "scores.parquet"
    with ResultsWriter(path, "parquet") as writer:
        for result in results():
            writer.write(result)
    rows = pq.read_table(path).to_pylist()
    for row, result in zip(rows, results(), strict=True):
        expected = result.to_dict()
        assert set(row) == set(expected)
        for name in ("nearest", "nearest_defect", "boxes"):
            row[name] = None if row[name] is None else json.loads(row[name])
        assert row == expected


def test_a_failed_run_leaves_no_file(tmp_path):
    path = tmp_path / "scores.jsonl"
    with pytest.raises(RuntimeError):
        with ResultsWriter(path) as writer:
            writer.write(results()[0])
            raise RuntimeError("the job failed")
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_and_a_folder_are_refused(tmp_path):
    with pytest.raises(InputError, match="unknown results format 'csv'") as raised:
        check_results_format("csv")
    assert raised.value.parameter == "results_format"
    with pytest.raises(InputError, match="is a folder"):
        ResultsWriter(tmp_path)
