"""The station's history kept on disk (`--history-on-disk`): it survives a restart (rows, reviews, the uploads
kept for teaching), stays bounded, and what is read back is checked: a damaged file is set aside with a warning
and the history starts empty."""

from __future__ import annotations

import shutil
import warnings

import numpy as np

from tests.conftest import part_image
from tests.integration.service.conftest import TOKEN, png_bytes
from tests.integration.service.test_station_api import station_index  # noqa: F401  (the module's index fixture)


def _app(folder, small_embedder, **settings):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with")
        from fastapi.testclient import TestClient
    from simsearch.inspector import Inspector
    from simsearch.service.app import create_app
    from simsearch.service.settings import ServiceSettings

    inspector = Inspector.load(folder, embedder=small_embedder)
    app = create_app(inspector, ServiceSettings(token=TOKEN, history_size=5, history_on_disk=True, **settings),
                     folder=folder)
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return client


def test_the_served_history_survives_a_restart_and_can_still_teach(station_index, small_embedder, tmp_path):  # noqa: F811
    folder = tmp_path / "index"
    shutil.copytree(station_index, folder)
    rng = np.random.default_rng(3)
    with _app(folder, small_embedder) as client:
        client.app.state.service.station.wait_for_reference(60)
        for n in range(3):
            client.post("/score", files={"image": (f"<i>part-{n}</i>.png", png_bytes(part_image(rng, defect=n == 2)),
                                                   "image/png")}).raise_for_status()
        client.post("/ui/api/history/1/review", json={"action": "skip"}).raise_for_status()
    assert (folder / "station" / "history" / "history.json").is_file()
    with _app(folder, small_embedder) as client:  # a restart
        client.app.state.service.station.wait_for_reference(60)
        session = client.get("/ui/api/session").json()
        assert session["history"]["on_disk"].endswith("history.json") and session["history"]["warning"] is None
        items = client.get("/ui/api/history").json()["items"]
        assert [i["name"] for i in items] == ["<i>part-2</i>.png", "<i>part-1</i>.png", "<i>part-0</i>.png"]
        assert items[2]["review"]["action"] == "skip" and all(i["image_kept"] for i in items)
        taught = client.post("/ui/api/history/3/review", json={"action": "defect", "type": "spot"})
        assert taught.status_code == 200, taught.text
        client.post("/score", files={"image": ("next.png", png_bytes(part_image(rng)), "image/png")})
        assert client.get("/ui/api/history").json()["items"][0]["id"] == 4  # ids go on, never reused


def test_the_page_is_told_when_the_history_on_disk_was_damaged(station_index, small_embedder, tmp_path):  # noqa: F811
    folder = tmp_path / "index"
    shutil.copytree(station_index, folder)
    (folder / "station" / "history").mkdir(parents=True)
    (folder / "station" / "history" / "history.json").write_text('{"format": 1, "items": "<script>"}')
    with _app(folder, small_embedder) as client:
        client.app.state.service.station.wait_for_reference(60)  # not cut off at exit
        warning = client.get("/ui/api/session").json()["history"]["warning"]
        assert "is damaged" in warning and "starting empty" in warning
        assert client.get("/ui/api/history").json()["items"] == []
