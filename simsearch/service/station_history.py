"""The inspection station's history kept on disk beside the index (`simsearch serve --history-on-disk`), so a
restart keeps the rows, their reviews and the uploads still kept for teaching.

`<index>/station/history/history.json` holds the rows (thumbnails inline); each kept upload is a file beside
it (`<id>.upload`) named in its row with its size and sha256. Every write is atomic (a temporary file, fsync,
rename): uploads first, then the JSON that names them, then uploads no row names any more are deleted. Writes
run in one background thread, at most every WRITE_EVERY_S, and once more at shutdown: the scoring path never
waits for the disk. What is read back is never trusted: the shape, types and sizes of every row are checked,
each upload's size and sha256 too; a file that fails is set aside (`history.json.damaged`) with a warning and
the history starts empty."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simsearch.files import write_bytes_atomic

if TYPE_CHECKING:
    from simsearch.service.station import History, HistoryItem

log = logging.getLogger("simsearch.service")

FORMAT = 1
WRITE_EVERY_S = 0.5
MAX_THUMB_BYTES = 256 * 1024  # a THUMB_SIDE JPEG is a few kB
MAX_TEXT = 8192  # any one string of a row (names, paths, types, times)
MAX_ROW_BYTES = MAX_THUMB_BYTES * 4 // 3 + 64 * 1024  # a row's JSON, thumbnail included
VERDICTS = ("reject", "pass", "uncalibrated")
ACTIONS = ("good", "defect", "skip")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _DamagedHistory(ValueError):
    """What is wrong with a history file read back (control flow: never leaves this module)."""


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise _DamagedHistory(what)


def _whole(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any, none: bool = False) -> bool:
    return (none and value is None) or (isinstance(value, str) and len(value) <= MAX_TEXT)


def _check_neighbour(value: Any, where: str) -> None:
    if value is None:
        return
    _need(isinstance(value, dict) and len(value) <= 16, f"{where} is not a neighbour record")
    _need(_whole(value.get("id")) and _number(value.get("distance")), f"{where} has no id and distance")
    for key, item in value.items():
        _need(_text(key) and (_text(item, none=True) or _number(item) or isinstance(item, bool)),
              f"{where}.{str(key)[:40]} is not a short text or a number")


def _check_summary(value: Any, where: str) -> None:
    _need(isinstance(value, dict), f"{where} is not a record")
    _need(_number(value.get("score")), f"{where}.score is not a finite number")
    _need(value.get("normalised") is None or _number(value["normalised"]), f"{where}.normalised is not a number")
    _need(value.get("verdict") in VERDICTS, f"{where}.verdict is not one of {', '.join(VERDICTS)}")
    _need(_text(value.get("predicted_type"), none=True), f"{where}.predicted_type is not a short text")
    _need(_whole(value.get("boxes", 0)), f"{where}.boxes is not a count")
    _need(value.get("generation") is None or _whole(value["generation"]), f"{where}.generation is not a count")
    _check_neighbour(value.get("nearest"), f"{where}.nearest")
    _check_neighbour(value.get("nearest_defect"), f"{where}.nearest_defect")
    _need(set(value) <= {"score", "normalised", "verdict", "predicted_type", "boxes", "generation", "nearest",
                         "nearest_defect"}, f"{where} has fields a score summary does not have")


def _check_review(value: Any, where: str) -> None:
    if value is None:
        return
    _need(isinstance(value, dict), f"{where} is not a record")
    _need(value.get("action") in ACTIONS, f"{where}.action is not one of {', '.join(ACTIONS)}")
    _need(_text(value.get("type"), none=True) and _text(value.get("by"), none=True)
          and _text(value.get("time"), none=True), f"{where} has a field that is not a short text")
    _need(value.get("exemplar") is None or _whole(value["exemplar"]), f"{where}.exemplar is not an id")
    _need((value.get("exemplar") is None) == (value["action"] == "skip"), f"{where}: a skip adds no exemplar")
    if value.get("after") is not None:
        _check_summary(value["after"], f"{where}.after")
    _need(set(value) <= {"action", "type", "exemplar", "by", "time", "after"}, f"{where} has unknown fields")


def _check_row(row: Any, number: int, next_id: int, image_budget: int) -> dict[str, Any]:
    where = f"item {number}"
    _need(isinstance(row, dict), f"{where} is not a record")
    _need(_whole(row.get("id"), 1) and row["id"] < next_id, f"{where}.id is not an id below next_id")
    _need(_text(row.get("time")) and _text(row.get("name")), f"{where}: time and name must be short texts")
    _need(_whole(row.get("generation")), f"{where}.generation is not a count")
    _check_summary(row.get("summary"), f"{where}.summary")
    _check_review(row.get("review"), f"{where}.review")
    thumb = row.get("thumb")
    _need(isinstance(thumb, str) and len(thumb) <= MAX_THUMB_BYTES * 4 // 3 + 4, f"{where}.thumb is not a thumbnail")
    try:
        data = base64.b64decode(thumb, validate=True)
    except (binascii.Error, ValueError):
        raise _DamagedHistory(f"{where}.thumb is not base64") from None
    _need(data.startswith(b"\xff\xd8\xff"), f"{where}.thumb is not a JPEG")
    image = row.get("image")
    if image is not None:
        _need(isinstance(image, dict) and set(image) == {"file", "bytes", "sha256"}, f"{where}.image is not a record")
        _need(image["file"] == f"{row['id']}.upload", f"{where}.image.file is not {row['id']}.upload")
        _need(_whole(image["bytes"], 1) and image["bytes"] <= image_budget, f"{where}.image.bytes is not a size "
              f"within the upload budget ({image_budget} bytes)")
        _need(isinstance(image["sha256"], str) and bool(_SHA256.match(image["sha256"])),
              f"{where}.image.sha256 is not a sha256")
    _need(set(row) <= {"id", "time", "name", "generation", "summary", "thumb", "review", "image"},
          f"{where} has unknown fields")
    return {**row, "thumb": data}


def _no_constant(name: str) -> Any:
    raise _DamagedHistory(f"{name} is not a number JSON allows")


class HistoryFile:
    """Keeps one History on disk in `folder` (see the module's text); `load` once at start, then `changed`
    after every change, and `close` at shutdown."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "history.json"
        self.warning: str | None = None  # why what was on disk was not used (shown on the page)
        self._history: "History | None" = None
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._written: dict[int, str] = {}  # upload files on disk: history id -> sha256
        self._write_lock = threading.Lock()
        self._failing = False  # the last write failed (said once in the log)

    # -- reading ----------------------------------------------------------------------------------------------
    def load(self, history: "History") -> int:
        """Fill `history` from the file (newest `history.size` rows, uploads within its budget); returns the
        rows read. A damaged file is set aside with a warning and the history starts empty."""
        from simsearch.service.station import HistoryItem

        self._history = history
        try:
            rows, next_id = self._read(history)
        except FileNotFoundError:
            return 0
        except OSError as error:  # not a damaged file: left where it is
            self.warning = f"cannot read the station history in {self.path} ({error.strerror or error}): starting empty"
            log.warning("%s", self.warning)
            return 0
        except (_DamagedHistory, ValueError, UnicodeDecodeError) as error:
            self._set_aside(str(error))
            return 0
        items, kept = [], 0
        for row in sorted(rows, key=lambda r: r["id"])[-history.size:]:
            image = None
            if row.get("image") is not None:
                image = self._read_upload(row)
            items.append(HistoryItem(row["id"], row["time"], row["name"], row["generation"], row["summary"],
                                     row["thumb"], image, row.get("review")))
        for item in reversed(items):  # the newest uploads are kept first, within the budget
            if item.image is not None:
                if kept + len(item.image) > history.image_budget:
                    item.image = None
                else:
                    kept += len(item.image)
                    self._written[item.id] = hashlib.sha256(item.image).hexdigest()
        history.restore(items, next_id)
        log.info("station history: %d item(s) read from %s", len(items), self.path)
        return len(items)

    def _read(self, history: "History") -> tuple[list[dict[str, Any]], int]:
        limit = MAX_ROW_BYTES * max(history.size, 1) + 4096
        with open(self.path, "rb") as handle:
            data = handle.read(limit + 1)
        _need(len(data) <= limit, f"larger than {history.size} rows can be ({limit} bytes)")
        record = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
        _need(isinstance(record, dict) and record.get("format") == FORMAT, f"not a history file of format {FORMAT}")
        next_id = record.get("next_id")
        _need(_whole(next_id, 1) and next_id < 2**53, "next_id is not an id")
        rows = record.get("items")
        _need(isinstance(rows, list), "items is not a list")
        checked = [_check_row(row, number, next_id, history.image_budget) for number, row in enumerate(rows)]
        ids = [row["id"] for row in checked]
        _need(len(set(ids)) == len(ids), "two items have the same id")
        return checked, next_id

    def _read_upload(self, row: dict[str, Any]) -> bytes | None:
        record = row["image"]
        path = self.folder / record["file"]
        try:
            with open(path, "rb") as handle:
                data = handle.read(record["bytes"] + 1)
        except OSError as error:
            log.warning("station history: the upload of item %s is not kept (%s)", row["id"], error.strerror or error)
            return None
        if len(data) != record["bytes"] or hashlib.sha256(data).hexdigest() != record["sha256"]:
            log.warning("station history: %s differs from what the history recorded (size or sha256); "
                        "item %s is kept without it", path, row["id"])
            return None
        return data

    def _set_aside(self, why: str) -> None:
        damaged = self.path.with_name(self.path.name + ".damaged")
        try:
            os.replace(self.path, damaged)
            kept = f"; the file is kept as {damaged}"
        except OSError:
            kept = ""
        self.warning = f"the station history in {self.path} is damaged ({why[:300]}): starting empty{kept}"
        log.warning("%s", self.warning)

    # -- writing ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="simsearch-station-history", daemon=True)
            self._thread.start()

    def changed(self) -> None:
        """The history changed: written within WRITE_EVERY_S (by the background thread)."""
        self._wake.set()

    def close(self, timeout: float | None = 30.0) -> None:
        """Write what changed and stop the thread."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self.write()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait()
            if not self._stop:
                time.sleep(WRITE_EVERY_S)  # one write for the changes of a burst
            self._wake.clear()
            self.write()

    def write(self) -> None:
        """Write the history now (uploads, then the JSON that names them, then unused uploads deleted)."""
        history = self._history
        if history is None:
            return
        with self._write_lock:
            items = history.newest()
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                rows = []
                for item in items:
                    try:  # only what reads back: a row that would not (a score that is not finite) stays out
                        _check_summary(item.summary, "summary")
                        _check_review(item.review, "review")
                    except _DamagedHistory:
                        continue
                    rows.append(self._row(item, item.image))  # image read once: it may be let go meanwhile
                record = {"format": FORMAT, "next_id": history.latest_id + 1, "items": rows}
                write_bytes_atomic(self.path, json.dumps(record, ensure_ascii=True, allow_nan=False).encode("ascii"))
                named = {row["image"]["file"] for row in rows if row["image"] is not None}
                for path in self.folder.glob("*.upload"):  # left the history, over the budget, or never read back
                    if path.name not in named:
                        path.unlink(missing_ok=True)
                self._written = {item_id: digest for item_id, digest in self._written.items()
                                 if f"{item_id}.upload" in named}
                self._failing = False
            except (OSError, ValueError) as error:  # the history is a convenience: scoring goes on
                if not self._failing:  # once, not at every write while it lasts
                    log.warning("cannot keep the station history in %s: %s", self.folder,
                                getattr(error, "strerror", None) or error)
                self._failing = True

    def _row(self, item: "HistoryItem", image: bytes | None) -> dict[str, Any]:
        record = None
        if image is not None:
            digest = self._written.get(item.id)
            if digest is None:
                digest = hashlib.sha256(image).hexdigest()
                write_bytes_atomic(self.folder / f"{item.id}.upload", image)
                self._written[item.id] = digest
            record = {"file": f"{item.id}.upload", "bytes": len(image), "sha256": digest}
        return {"id": item.id, "time": item.time[:MAX_TEXT], "name": item.name[:MAX_TEXT],
                "generation": item.generation, "summary": item.summary,
                "thumb": base64.b64encode(item.thumb).decode("ascii"), "review": item.review, "image": record}


__all__ = ["HistoryFile"]
