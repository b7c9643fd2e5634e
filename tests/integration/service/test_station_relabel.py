"""Relabel from the inspection station (`POST /ui/api/exemplars/{id}/relabel`): the locked relabel of
`PATCH /exemplars/{id}`, audited with who, the label and type before and after, and its undo; refusals."""

from __future__ import annotations

import json

import numpy as np

from simsearch.index import ExemplarIndex
from tests.conftest import part_image
from tests.integration.service.conftest import png_bytes
from tests.integration.service.test_station_api import station, station_index  # noqa: F401  (fixtures)


def test_relabel_is_audited_and_undone(station):  # noqa: F811
    client, folder = station
    good = min(e.id for e in ExemplarIndex.load(folder).exemplars.values() if e.label == "good")
    answer = client.post(f"/ui/api/exemplars/{good}/relabel", json={"label": "defect", "type": "<b>dent</b>"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    new = body["new"]["id"]
    assert body["changed"] and body["old"]["id"] == good and "<b>dent</b>" in body["defect_types"]
    assert body["audit"]["before"] == {"label": "good", "type": None, "exemplar": good}
    assert body["audit"]["after"] == {"label": "defect", "type": "<b>dent</b>", "exemplar": new}
    back = client.post(f"/ui/api/exemplars/{new}/relabel", json={"label": "good", "undo": True}).json()
    entries = [json.loads(line) for line in (folder / "station" / "audit.jsonl").read_text().splitlines()]
    assert [e["action"] for e in entries[-2:]] == ["relabel", "undo relabel"]
    assert entries[-1]["who"] == "line-3.token" and entries[-1]["was"] == new
    index = ExemplarIndex.load(folder)
    assert index.exemplars[back["new"]["id"]].label == "good" and good not in index.exemplars
    same = client.post(f"/ui/api/exemplars/{back['new']['id']}/relabel", json={"label": "good"}).json()
    assert not same["changed"] and same["audit"] is None  # nothing to change: nothing audited


def test_relabel_refusals(station):  # noqa: F811
    client, folder = station
    good = min(e.id for e in ExemplarIndex.load(folder).exemplars.values() if e.label == "good")
    assert client.post(f"/ui/api/exemplars/{good}/relabel", json={"label": "purple"}).status_code == 422
    assert client.post(f"/ui/api/exemplars/{good}/relabel", json={"label": "good", "type": "x"}).status_code == 422
    assert client.post(f"/ui/api/exemplars/{good}/relabel",
                       json={"label": "defect", "type": "a\nb"}).status_code == 422
    assert client.post("/ui/api/exemplars/99999/relabel", json={"label": "good"}).status_code == 404
    added = client.post("/exemplars", data={"label": "good"},
                        files={"image": ("up.png", png_bytes(part_image(np.random.default_rng(8))), "image/png")})
    refused = client.post(f"/ui/api/exemplars/{added.json()['id']}/relabel", json={"label": "defect"})
    assert refused.status_code == 422 and "not there" in refused.json()["detail"]
    assert client.post(f"/ui/api/exemplars/{good}/relabel", json={"label": "good"},
                       headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
