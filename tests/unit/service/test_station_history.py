"""The station's history kept on disk (`--history-on-disk`): it survives a restart (rows, reviews, the uploads
kept for teaching), stays bounded, and what is read back is checked: a damaged file is set aside with a warning
and the history starts empty."""

from __future__ import annotations

import base64
import json
import logging
import time

import numpy as np
import pytest

from simsearch.service.station import History, thumbnail_jpeg
from simsearch.service.station_history import HistoryFile

SUMMARY = {"score": 1.25, "normalised": 0.61, "verdict": "reject", "nearest": {"id": 3, "path": "/a/b.png",
           "label": "good", "type": None, "distance": 0.5}, "nearest_defect": None, "predicted_type": None, "boxes": 1}
THUMB = thumbnail_jpeg(np.zeros((20, 20, 3), dtype=np.uint8))


def _kept(tmp_path, size=5, budget=1000) -> tuple[History, HistoryFile]:
    history = History(size, budget)
    disk = HistoryFile(tmp_path / "history")
    disk.load(history)
    history.on_change = disk.changed
    return history, disk


def test_rows_reviews_and_uploads_read_back_ids_continue(tmp_path):
    history, disk = _kept(tmp_path)
    first = history.record("<b>one</b>.png", 2, SUMMARY, THUMB, b"x" * 300)
    history.record("two.png", 2, {**SUMMARY, "verdict": "pass"}, THUMB, b"y" * 300)
    first.review = {"action": "defect", "type": "crack", "exemplar": 9, "by": "t", "time": "now",
                    "after": {**SUMMARY, "generation": 3}}
    disk.write()
    again, disk2 = _kept(tmp_path)
    assert disk2.warning is None
    assert [(i.id, i.name, i.image) for i in again.newest()] == [(2, "two.png", b"y" * 300),
                                                                 (1, "<b>one</b>.png", b"x" * 300)]
    assert again.get(1).review == first.review and again.get(1).thumb == THUMB and again.get(1).summary == SUMMARY
    assert again.record("three.png", 3, SUMMARY, THUMB, None).id == 3


def test_written_in_the_background_as_it_changes(tmp_path):
    history, disk = _kept(tmp_path)
    disk.start()
    try:
        history.record("a.png", 1, SUMMARY, THUMB, b"a" * 10)
        deadline = time.monotonic() + 30
        while not (tmp_path / "history" / "history.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert json.loads((tmp_path / "history" / "history.json").read_text())["items"][0]["name"] == "a.png"
    finally:
        disk.close()
    assert not list((tmp_path / "history").glob(".*.tmp"))  # written atomically: no temporary left


def test_bounded_and_unused_uploads_deleted(tmp_path):
    history, disk = _kept(tmp_path, size=3, budget=700)
    for n in range(5):
        history.record(f"{n}.png", 1, SUMMARY, THUMB, bytes([n]) * 300)
    disk.write()
    uploads = sorted(p.name for p in (tmp_path / "history").glob("*.upload"))
    assert uploads == ["4.upload", "5.upload"]  # 3 rows, the uploads of the newest two within 700 bytes
    again, disk2 = _kept(tmp_path, size=2, budget=300)  # smaller at the next start: the newest rows and uploads
    assert [i.id for i in again.newest()] == [5, 4] and again.get(5).image == bytes([4]) * 300
    assert again.get(4).image is None
    disk2.write()  # what is no longer kept is deleted
    assert sorted(p.name for p in (tmp_path / "history").glob("*.upload")) == ["5.upload"]


def test_a_changed_upload_is_not_trusted(tmp_path, caplog):
    history, disk = _kept(tmp_path)
    history.record("a.png", 1, SUMMARY, THUMB, b"a" * 100)
    disk.write()
    (tmp_path / "history" / "1.upload").write_bytes(b"b" * 100)  # same size, other bytes
    with caplog.at_level(logging.WARNING, "simsearch.service"):
        again, disk2 = _kept(tmp_path)
    assert again.get(1) is not None and again.get(1).image is None  # the row stays, not teachable
    assert "differs from what the history recorded" in caplog.text and disk2.warning is None


def _row(**change):
    row = {"id": 1, "time": "t", "name": "a.png", "generation": 1, "summary": SUMMARY,
           "thumb": base64.b64encode(THUMB).decode(), "review": None, "image": None}
    return {**row, **change}


@pytest.mark.parametrize("content", [
    b"not json{",
    b"\xff\xfe binary",
    json.dumps({"format": 2, "next_id": 2, "items": []}).encode(),
    json.dumps({"format": 1, "next_id": 1, "items": [_row()]}).encode(),  # an id at or above next_id
    json.dumps({"format": 1, "next_id": 5, "items": [_row(), _row()]}).encode(),  # the same id twice
    json.dumps({"format": 1, "next_id": 5,
                "items": [_row(thumb=base64.b64encode(b"<svg onload=x>").decode())]}).encode(),
    json.dumps({"format": 1, "next_id": 5, "items": [_row(name=["a"])]}).encode(),
    json.dumps({"format": 1, "next_id": 5, "items": [_row(name="x" * 9000)]}).encode(),
    json.dumps({"format": 1, "next_id": 5, "items": [_row(summary={**SUMMARY, "verdict": "<script>"})]}).encode(),
    b'{"format": 1, "next_id": 5, "items": [' + json.dumps(_row()).encode().replace(b"1.25", b"NaN") + b"]}",
    json.dumps({"format": 1, "next_id": 5, "items": [_row(review={"action": "good", "exemplar": None})]}).encode(),
    json.dumps({"format": 1, "next_id": 5, "items": [_row(image={"file": "../../manifest.json", "bytes": 10,
                                                                  "sha256": "0" * 64})]}).encode(),
    json.dumps({"format": 1, "next_id": 5, "items": [_row(image={"file": "1.upload", "bytes": 10**12,
                                                                  "sha256": "0" * 64})]}).encode(),
])
def test_a_damaged_file_is_set_aside_with_a_warning(tmp_path, caplog, content):
    (tmp_path / "history").mkdir()
    (tmp_path / "history" / "history.json").write_bytes(content)
    with caplog.at_level(logging.WARNING, "simsearch.service"):
        history, disk = _kept(tmp_path)
    assert len(history) == 0 and history.latest_id == 0
    assert disk.warning is not None and "is damaged" in disk.warning and "starting empty" in disk.warning
    assert "is damaged" in caplog.text
    assert (tmp_path / "history" / "history.json.damaged").read_bytes() == content
    assert not (tmp_path / "history" / "history.json").exists()


def test_a_file_too_large_for_the_history_is_refused(tmp_path):
    (tmp_path / "history").mkdir()
    (tmp_path / "history" / "history.json").write_bytes(b" " * (2 * 400 * 1024))
    history, disk = _kept(tmp_path, size=1)
    assert len(history) == 0 and "larger than" in disk.warning


def test_a_folder_that_cannot_be_written_is_said_once(tmp_path, caplog):
    (tmp_path / "history").write_text("a file where the folder would be")
    history, disk = _kept(tmp_path)
    assert disk.warning.startswith("cannot read the station history") and "starting empty" in disk.warning
    assert (tmp_path / "history").read_text() == "a file where the folder would be"  # not set aside
    history.record("a.png", 1, SUMMARY, THUMB, None)
    with caplog.at_level(logging.WARNING, "simsearch.service"):
        disk.write()
        disk.write()
    assert caplog.text.count("cannot keep the station history") == 1
