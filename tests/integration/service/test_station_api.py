"""The inspection station's API in-process (TestClient): history, review with the score before and after, undo,
the audit log, exemplar thumbnails, the manual threshold and its staleness, drift, cross-site refusals."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simsearch.index import ExemplarIndex
from tests.conftest import part_image
from tests.integration.service.conftest import TOKEN, png_bytes


def build_station_index(embedder, folder: Path, images: Path) -> None:
    """12 good and 2 defect synthetic parts from files (so the calibration goods can be re-embedded), calibrated
    good-only at 10 % false alarms, saved to `folder`."""
    from simsearch.inspector import Inspector

    rng = np.random.default_rng(5)
    paths = []
    for label, count in (("good", 12), ("spot", 2)):
        (images / label).mkdir(parents=True)
        for i in range(count):
            path = images / label / f"{i:02d}.png"
            Image.fromarray(part_image(rng, defect=label != "good")).save(path)
            paths.append(path)
    inspector = Inspector(embedder).fit([str(p) for p in paths[:12]])
    inspector.add([str(p) for p in paths[12:]], "defect", defect_type="spot")
    inspector.calibrate(policy="good-only", target=0.1)
    inspector.save(folder)


@pytest.fixture(scope="module")
def station_index(small_embedder, tmp_path_factory):
    root = tmp_path_factory.mktemp("station")
    build_station_index(small_embedder, root / "index", root / "images")
    return root / "index"


@pytest.fixture
def station(station_index, small_embedder, tmp_path):
    """A TestClient over a private copy of the index, with the token, and its folder."""
    import shutil

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with")
        from fastapi.testclient import TestClient
    from simsearch.inspector import Inspector
    from simsearch.service.app import create_app
    from simsearch.service.settings import ServiceSettings

    folder = tmp_path / "index"
    shutil.copytree(station_index, folder)
    inspector = Inspector.load(folder, embedder=small_embedder)
    app = create_app(inspector, ServiceSettings(token=TOKEN, token_name="line-3.token", history_size=5,
                                                drift_window=4), folder=folder)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        app.state.service.station.wait_for_reference(60)
        yield client, folder


def _score(client, pixels, name="part.png"):
    response = client.post("/score", files={"image": (name, png_bytes(pixels), "image/png")})
    assert response.status_code == 200, response.text
    return response.json()


def test_page_is_served_with_a_strict_policy_and_no_token(station):
    client, _ = station
    for path in ("/", "/ui/", "/ui/app.js", "/ui/app.css"):
        response = client.get(path, headers={"Authorization": ""})
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    page = client.get("/").text
    assert "<script src=\"/ui/app.js\"" in page and "http" not in page.split("<body>")[1]  # nothing from elsewhere
    script = client.get("/ui/app.js").text
    assert "innerHTML" not in script and "eval(" not in script
    # the data needs the token
    assert client.get("/ui/api/history", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/ui/api/session", headers={"Authorization": ""}).status_code == 401


def test_history_is_bounded_newest_first(station):
    client, _ = station
    rng = np.random.default_rng(3)
    for i in range(7):
        _score(client, part_image(rng), f"<b>part{i}</b>.png")
    body = client.get("/ui/api/history").json()
    assert [item["name"] for item in body["items"]] == [f"<b>part{i}</b>.png" for i in range(6, 1, -1)]
    item = body["items"][0]
    assert item["verdict"] in ("pass", "reject") and 0 <= item["normalised"] <= 1
    assert item["nearest"]["label"] == "good" and item["thumb"] and item["image_kept"]
    assert client.get(f"/ui/api/history?after={body['latest_id'] - 1}").json()["items"][0]["id"] == body["latest_id"]
    overlay = client.get(f"/ui/api/history/{item['id']}/overlay")
    assert overlay.status_code == 200 and overlay.content.startswith(b"\x89PNG")
    assert client.get("/ui/api/history/1/overlay").status_code == 404  # left the history


def test_teach_defect_changes_the_score_and_undo_restores_it(station):
    client, folder = station
    rng = np.random.default_rng(9)
    scored = _score(client, part_image(rng, defect=True), "odd.png")
    queue = client.get("/ui/api/review").json()["queue"]
    item = queue[0]
    assert item["name"] == "odd.png"
    taught = client.post(f"/ui/api/history/{item['id']}/review", json={"action": "defect", "type": "<img src=x>"})
    assert taught.status_code == 200, taught.text
    body = taught.json()
    assert body["before"]["score"] == pytest.approx(scored["score"])
    assert body["after"]["score"] > body["before"]["score"]  # defect-aware scoring: now like a known defect
    assert body["after"]["predicted_type"] == "<img src=x>"
    exemplar = body["exemplar"]
    assert ExemplarIndex.load(folder).exemplars[exemplar["id"]].defect_type == "<img src=x>"  # on disk
    assert client.get(f"/ui/api/exemplars/{exemplar['id']}/thumb").headers["content-type"] == "image/jpeg"
    # a second click on the same image is refused until undone
    assert client.post(f"/ui/api/history/{item['id']}/review", json={"action": "good"}).status_code == 409

    undone = client.post(f"/ui/api/history/{item['id']}/undo")
    assert undone.status_code == 200, undone.text
    assert undone.json()["after"]["score"] == pytest.approx(scored["score"], rel=1e-5)
    assert exemplar["id"] not in ExemplarIndex.load(folder).exemplars

    entries = [json.loads(line) for line in (folder / "station" / "audit.jsonl").read_text().splitlines()]
    assert [e["action"] for e in entries] == ["add", "undo"]
    assert entries[0]["who"] == "line-3.token" and TOKEN not in json.dumps(entries)
    assert entries[0]["before"]["score"] == pytest.approx(scored["score"])
    assert entries[0]["after"]["score"] == pytest.approx(body["after"]["score"])
    assert client.get("/ui/api/audit").json()["entries"][0]["action"] == "undo"


def test_teach_good_and_bad_requests(station):
    client, _ = station
    rng = np.random.default_rng(4)
    _score(client, part_image(rng, defect=True))
    item = client.get("/ui/api/review").json()["queue"][0]
    good = client.post(f"/ui/api/history/{item['id']}/review", json={"action": "good"}).json()
    assert good["after"]["score"] < good["before"]["score"]  # its own nearest good now
    assert client.post("/ui/api/history/99/review", json={"action": "good"}).status_code == 404
    assert client.post(f"/ui/api/history/{item['id']}/review", json={"action": "maybe"}).status_code == 422
    assert client.post(f"/ui/api/history/{item['id']}/review",
                       json={"action": "defect", "type": "a\nb"}).status_code == 422
    # the API's own adds and removes are audited too
    removed = client.delete(f"/exemplars/{good['exemplar']['id']}")
    assert removed.status_code == 200
    assert client.get("/ui/api/audit").json()["entries"][0]["action"] == "remove"


def test_cross_site_state_changes_are_refused(station):
    client, _ = station
    rng = np.random.default_rng(2)
    _score(client, part_image(rng))
    item = client.get("/ui/api/review").json()["queue"][0]
    url = f"/ui/api/history/{item['id']}/review"
    assert client.post(url, json={"action": "skip"}, headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post(url, json={"action": "skip"}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post(url, json={"action": "skip"},
                       headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_manual_threshold_is_stored_and_goes_stale(station):
    client, folder = station
    before = client.get("/ui/api/threshold").json()
    assert before["threshold"]["policy"] == "good-only" and not before["stale"]
    goods = [s for s in before["samples"] if s["source"] == "calibration good"]
    assert len(goods) == 12  # the good exemplars' leave-one-out scores
    value = before["threshold"]["value"] * 1.5
    applied = client.post("/ui/api/threshold", json={"value": value, "reason": "fewer false alarms on line 3"})
    assert applied.status_code == 200, applied.text
    record = ExemplarIndex.load(folder).threshold
    assert record["value"] == pytest.approx(value) and record["policy"] == "manual"
    assert record["reason"].startswith("fewer false alarms") and record["metrics"]["good"] == 12
    assert client.get("/info").json()["threshold"]["value"] == pytest.approx(value)
    assert not client.get("/ui/api/threshold").json()["stale"]
    assert client.post("/ui/api/threshold", json={"value": -1, "reason": "x"}).status_code == 422
    assert client.post("/ui/api/threshold", json={"value": 1.0, "reason": ""}).status_code == 422
    # a taught exemplar makes it stale
    rng = np.random.default_rng(8)
    _score(client, part_image(rng))
    item = client.get("/ui/api/review").json()["queue"][0]
    client.post(f"/ui/api/history/{item['id']}/review", json={"action": "good"})
    stale = client.get("/ui/api/threshold").json()
    assert stale["stale"] and "generation" in stale["warning"]


def test_drift_warns_when_passed_scores_rise(station):
    client, _ = station
    rng = np.random.default_rng(6)
    for _ in range(4):  # like the goods
        _score(client, part_image(rng))
    first = client.get("/ui/api/drift").json()
    assert len(first["windows"]) == 1 and not first["windows"][0]["warning"] and first["warning"] is None
    # a lighting change the threshold lets through (set high on purpose): darker parts, passed, scoring higher
    assert client.post("/ui/api/threshold", json={"value": 100.0, "reason": "test"}).status_code == 200
    for _ in range(4):
        _score(client, (part_image(rng).astype(np.float32) * 0.6).astype(np.uint8))
    drift = client.get("/ui/api/drift").json()
    latest = drift["windows"][0]
    assert latest["count"] == 4 and latest["median"] > latest["reference_median"] and latest["warning"]
    assert "KS D = 1.00" in drift["warning"] and len(drift["reference"]) == 12
    metrics = client.get("/metrics").text
    assert "simsearch_drift_windows 2" in metrics and "simsearch_drift_warning 1" in metrics
    assert "simsearch_drift_ks_statistic 1" in metrics
