"""Score results to a file: JSON lines (one `score --json` record per line) or Parquet (the same keys as
columns; the nested ones, nearest exemplars and boxes, as JSON text). Written to a temporary file and moved
into place when complete, so a failed run leaves no half file under the name asked for."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from simsearch.errors import InputError
from simsearch.score.results import ScoreResult

RESULT_FORMATS = ("jsonl", "parquet")
NESTED_FIELDS = ("nearest", "nearest_defect", "boxes", "type_evidence")
PARQUET_ROWS_PER_GROUP = 4096


def check_results_format(results_format: str) -> str:
    """A known results format, or an InputError naming the known ones."""
    if results_format not in RESULT_FORMATS:
        raise InputError(f"unknown results format {results_format!r}", hint="use jsonl or parquet in {param}",
                         parameter="results_format")
    return results_format


def _parquet_schema():
    import pyarrow as pa
    return pa.schema([("path", pa.string()), ("score", pa.float64()), ("normalised_score", pa.float64()),
                      ("is_anomaly", pa.bool_()), ("predicted_type", pa.string())]
                     + [(name, pa.string()) for name in NESTED_FIELDS])


class ResultsWriter:
    """Writes ScoreResults to the file `results` as `results_format` (jsonl or parquet); use as a context
    manager."""

    def __init__(self, results: str | Path, results_format: str = "jsonl"):
        self.path = Path(results)
        self.results_format = check_results_format(results_format)
        if self.path.is_dir():
            raise InputError(f"{self.path} is a folder", hint="give a file name in {param}", parameter="results")
        if self.results_format == "parquet":
            try:
                import pyarrow  # noqa: F401  (comes with the ray extra)
            except ImportError:
                raise InputError("Parquet results need pyarrow, which is not installed",
                                 hint="install it with `pip install simsearch[ray]`, or use jsonl in {param}",
                                 parameter="results_format") from None
        self.count = 0
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        self._file: IO[str] | None = None
        self._parquet: Any = None
        self._rows: list[dict[str, Any]] = []

    def __enter__(self) -> "ResultsWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.results_format == "jsonl":
            self._file = open(self._partial, "w", encoding="utf-8")
        else:
            import pyarrow.parquet as pq
            self._parquet = pq.ParquetWriter(self._partial, _parquet_schema())
        return self

    def write(self, result: ScoreResult) -> None:
        record = result.to_dict()
        if self._file is not None:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            for name in NESTED_FIELDS:
                record[name] = None if record[name] is None else json.dumps(record[name], ensure_ascii=False)
            self._rows.append(record)
            if len(self._rows) >= PARQUET_ROWS_PER_GROUP:
                self._flush_rows()
        self.count += 1

    def _flush_rows(self) -> None:
        import pyarrow as pa
        if self._rows:
            self._parquet.write_table(pa.Table.from_pylist(self._rows, schema=_parquet_schema()))
            self._rows = []

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            if self._file is not None:
                self._file.close()
            if self._parquet is not None:
                if kind is None:
                    self._flush_rows()
                self._parquet.close()
        finally:
            if kind is None:
                os.replace(self._partial, self.path)
            else:
                self._partial.unlink(missing_ok=True)
