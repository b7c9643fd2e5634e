"""The app in-process (TestClient): every endpoint, every bad request, concurrent scores and adds."""

from __future__ import annotations

import base64
import concurrent.futures
import struct
import sys
import zlib

import numpy as np
import pytest

from simsearch.index import ExemplarIndex
from tests.integration.service.conftest import TOKEN, make_client, png_bytes


def _file(pixels: np.ndarray, name: str = "part.png") -> dict:
    return {"image": (name, png_bytes(pixels), "image/png")}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims a huge size: the server must refuse it without decoding."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _chunk(b"IEND", b""))


def test_score_matches_in_process_scoring(client, index_copy, images):
    inspector, _ = index_copy
    for kind, pixels in images.items():
        response = client.post("/score", files=_file(pixels, f"{kind}.png"))
        assert response.status_code == 200, response.text
        expected = inspector.score([pixels])[0].to_dict()
        expected["path"] = f"{kind}.png"  # the server names a result after the upload
        body = response.json()
        assert body["score"] == pytest.approx(expected["score"], abs=1e-5)
        assert body == expected
    assert client.post("/score", files=_file(images["defect"])).json()["score"] > \
        client.post("/score", files=_file(images["good"])).json()["score"]


def test_score_heatmap_is_a_png(client, images):
    response = client.post("/score?heatmap=true", files=_file(images["defect"]))
    assert response.status_code == 200
    assert base64.b64decode(response.json()["heatmap_png"]).startswith(b"\x89PNG")


def test_add_get_remove_persist_before_answer(client, index_copy, images):
    _, folder = index_copy
    before = client.get("/info").json()["counts"]
    added = client.post("/exemplars", files=_file(images["defect"], "crack.png"),
                        data={"label": "ng", "type": "crack"})
    assert added.status_code == 200, added.text
    exemplar = added.json()
    assert exemplar["label"] == "defect" and exemplar["defect_type"] == "crack"
    assert exemplar["path"] == "upload:crack.png"
    on_disk = ExemplarIndex.load(folder)  # saved before the 200
    assert on_disk.exemplars[exemplar["id"]].defect_type == "crack"
    assert client.get(f"/exemplars/{exemplar['id']}").json() == exemplar
    assert client.get("/info").json()["counts"]["defect"] == before["defect"] + 1
    # the new defect exemplar is now the nearest defect of the same image
    assert client.post("/score", files=_file(images["defect"])).json()["nearest_defect"]["id"] == exemplar["id"]

    good = client.post("/exemplars", files=_file(images["good"]), data={"label": "good"}).json()
    assert ExemplarIndex.load(folder).counts()["good"] == before["good"] + 1
    removed = client.delete(f"/exemplars/{good['id']}")
    assert removed.status_code == 200 and removed.json()["removed"]["id"] == good["id"]
    assert good["id"] not in ExemplarIndex.load(folder).exemplars
    assert client.get(f"/exemplars/{good['id']}").status_code == 404
    assert client.get("/info").json()["counts"]["good"] == before["good"]


def test_info_health_ready_metrics_openapi(client):
    info = client.get("/info").json()
    assert info["counts"]["good"] == 10 and info["counts"]["defect"] == 2 and info["mode"] == "patch"
    assert info["embedder"]["kind"] == "backbone" and info["auth"] is True
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    client.get("/exemplars/12345")
    text = client.get("/metrics").text
    assert 'simsearch_requests_total{method="GET",route="/exemplars/{exemplar_id}",status="404"} 1' in text
    assert 'simsearch_request_duration_seconds_bucket{method="GET",route="/info",le="+Inf"} 1' in text
    assert 'simsearch_errors_total{route="/exemplars/{exemplar_id}",kind="client"} 1' in text
    assert 'simsearch_exemplars{label="good"} 10' in text
    assert "simsearch_batch_size_count 0" in text
    schema = client.get("/openapi.json").json()
    assert {"/score", "/exemplars", "/exemplars/{exemplar_id}", "/info", "/healthz", "/readyz",
            "/metrics"} <= set(schema["paths"])
    assert "413" in schema["paths"]["/score"]["post"]["responses"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-0123456789"},
                                     {"Authorization": f"Basic {TOKEN}"}])
def test_wrong_or_missing_token_is_401(client, images, headers):
    client.headers.pop("Authorization")
    for method, url, kwargs in (("post", "/score", {"files": _file(images["good"])}), ("get", "/info", {}),
                                ("get", "/exemplars/0", {}), ("delete", "/exemplars/0", {}),
                                ("get", "/metrics", {})):
        response = getattr(client, method)(url, headers=headers, **kwargs)
        assert response.status_code == 401, (url, response.text)
        assert response.json()["detail"] == "missing or wrong bearer token"
    assert client.get("/healthz").status_code == 200  # probes need no token
    assert client.get("/exemplars/0", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_bad_requests_get_json_4xx_and_server_keeps_serving(client, images):
    cases = [
        (client.post("/score", files={"image": ("notes.txt", b"not an image at all", "text/plain")}), 415),
        (client.post("/score", files={"image": ("empty.png", b"", "image/png")}), 415),
        (client.post("/score", files={"image": ("huge.png", _png_header_claiming(20000, 20000), "image/png")}), 413),
        (client.post("/score", files={"wrong_field": ("a.png", png_bytes(images["good"]), "image/png")}), 422),
        (client.post("/score"), 422),
        (client.post("/exemplars", files=_file(images["good"])), 422),  # no label
        (client.post("/exemplars", files=_file(images["good"]), data={"label": "maybe"}), 422),
        (client.post("/exemplars", files=_file(images["good"]), data={"label": "good", "type": "dent"}), 422),
        (client.get("/exemplars/999"), 404),
        (client.delete("/exemplars/999"), 404),
        (client.get("/exemplars/not-a-number"), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert "detail" in response.json()
    assert client.post("/score", files=_file(images["good"])).status_code == 200


def test_upload_and_pixel_limits_are_configurable(index_copy, images):
    with make_client(index_copy, max_upload_bytes=2000, max_pixels=50 * 50) as client:
        big = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)  # noise: PNG > 2000 bytes
        response = client.post("/score", files=_file(big))
        assert response.status_code == 413 and "limit" in response.json()["detail"]
        wide = np.zeros((10, 400, 3), np.uint8)  # small file, too many pixels for this server
        response = client.post("/score", files=_file(wide))
        assert response.status_code == 413 and "megapixels" in response.json()["detail"]
        declared = client.post("/score", content=b"x" * 100_000,
                               headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert declared.status_code == 413 and "detail" in declared.json()
        streamed = client.post("/score", content=iter([b"x" * 50_000] * 3),  # chunked: no length declared
                               headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert streamed.status_code == 413 and "over the limit" in streamed.json()["detail"]
        assert client.post("/score", files=_file(images["good"][:40, :40])).status_code == 200


def test_the_same_image_three_times_is_one_exemplar(client, index_copy, images):
    """As `simsearch add` does: a file the index holds (sha256) is skipped, and the answer says so and where."""
    _, folder = index_copy
    before = ExemplarIndex.load(folder).counts()
    answers = [client.post("/exemplars", files=_file(images["defect"], f"crack-{n}.png"),
                           data={"label": "defect", "type": "crack"}) for n in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    first, *again = [a.json() for a in answers]
    assert "skipped" not in first
    for answer in again:
        assert "id" not in answer and answer["held_as"]["id"] == first["id"]
        assert f"#{first['id']}" in answer["skipped"] and "upload:crack-0.png" in answer["skipped"]
    on_disk = ExemplarIndex.load(folder)
    assert on_disk.counts()["defect"] == before["defect"] + 1
    assert sum(e.sha256 == first["sha256"] for e in on_disk.exemplars.values()) == 1
    # held as defect, sent as good: still skipped (relabelling is not an add), the answer names the label
    as_good = client.post("/exemplars", files=_file(images["defect"]), data={"label": "good"}).json()
    assert "id" not in as_good and as_good["held_as"]["label"] == "defect" and "defect" in as_good["skipped"]
    forced = client.post("/exemplars", files=_file(images["defect"]),
                         data={"label": "defect", "type": "crack", "allow_duplicates": "true"}).json()
    assert "skipped" not in forced and forced["id"] != first["id"]
    assert ExemplarIndex.load(folder).counts()["defect"] == before["defect"] + 2


def test_last_good_exemplar_cannot_be_removed(client):
    good_ids = [e["id"] for e in map(lambda i: client.get(f"/exemplars/{i}").json(), range(12))
                if e["label"] == "good"]
    for exemplar_id in good_ids[:-1]:
        assert client.delete(f"/exemplars/{exemplar_id}").status_code == 200
    response = client.delete(f"/exemplars/{good_ids[-1]}")
    assert response.status_code == 409 and "last good" in response.json()["detail"]
    assert response.json()["category"] == "conflict"
    missing = client.delete("/exemplars/999")
    assert missing.status_code == 404 and missing.json()["category"] == "not-found"


def test_concurrent_scores_and_adds_lose_nothing(client, index_copy, images):
    _, folder = index_copy
    rng = np.random.default_rng(3)
    parts = [images["good"], images["defect"]]

    def score(i):
        return client.post("/score", files=_file(parts[i % 2])).status_code, None

    def add(i):
        noisy = np.clip(parts[0].astype(int) + rng.integers(-5, 6, parts[0].shape), 0, 255).astype(np.uint8)
        response = client.post("/exemplars", files=_file(noisy, f"add{i}.png"), data={"label": "good"})
        return response.status_code, response.json().get("id")

    jobs = [score] * 24 + [add] * 6
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda job_i: job_i[0](job_i[1]), [(job, i) for i, job in enumerate(jobs)]))
    assert [status for status, _ in outcomes] == [200] * len(jobs)
    acknowledged = {exemplar_id for status, exemplar_id in outcomes if exemplar_id is not None}
    assert len(acknowledged) == 6
    reloaded = ExemplarIndex.load(folder)
    assert acknowledged <= set(reloaded.exemplars) and reloaded.counts()["good"] == 16
    text = client.get("/metrics").text
    assert 'simsearch_requests_total{method="POST",route="/score",status="200"} 24' in text


def test_readyz_is_503_once_scoring_stopped(index_copy):
    client = make_client(index_copy)
    with client:
        assert client.get("/readyz").status_code == 200
    # after the lifespan ended the batcher is stopped: a fresh request through the same app is refused
    from fastapi.testclient import TestClient
    raw = TestClient(client.app)  # no `with`: no lifespan, so nothing starts the batcher again
    assert raw.get("/readyz").status_code == 503
    response = raw.post("/score", files=_file(np.zeros((32, 32, 3), np.uint8)))
    assert response.status_code == 503 and "detail" in response.json()
    assert sys.modules["simsearch.service.app"]


def test_add_after_another_writer_changed_the_folder_keeps_both_changes(client, index_copy, images):
    _, folder = index_copy
    other = ExemplarIndex.load(folder)
    other.remove([1])
    other.save(folder)
    response = client.post("/exemplars", files=_file(images["good"]), data={"label": "good"})
    assert response.status_code == 200
    on_disk = ExemplarIndex.load(folder)
    assert 1 not in on_disk.exemplars and response.json()["id"] in on_disk.exemplars
    assert client.get("/exemplars/1").status_code == 404  # the server reloaded the outside change


def test_add_while_another_process_holds_the_lock_is_409_not_a_hang(index_copy, images):
    import subprocess
    import sys

    from tests.integration.service.conftest import TOKEN, make_client

    _, folder = index_copy
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(folder / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with make_client(index_copy, token=TOKEN) as raw:
            raw.app.state.service.state.wait = 0.2
            response = raw.post("/exemplars", files=_file(images["good"]), data={"label": "good"},
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 409 and "another writer" in response.json()["detail"]
    finally:
        holder.kill()
        holder.wait()
