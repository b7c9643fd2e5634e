"""Issue 29 item 8: the served folder rebuilt with another embedder makes the server not ready, and says why."""

from __future__ import annotations

from simsearch.index import ExemplarIndex
from tests.integration.service.conftest import make_client


def test_a_folder_rebuilt_with_another_embedder_is_not_ready_and_info_says_why(index_copy):
    _, folder = index_copy
    with make_client(index_copy) as client:
        assert client.get("/readyz").status_code == 200
        rebuilt = ExemplarIndex.load(folder)
        rebuilt.fingerprint = "another-embedder"
        rebuilt.save(folder)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "another embedder" in ready.json()["detail"]
        assert "another embedder" in client.get("/info").json()["unservable"]
        restored = ExemplarIndex.load(folder)  # the embedder it was built with again: ready again
        restored.fingerprint = index_copy[0].embedder.fingerprint
        restored.save(folder)
        assert client.get("/readyz").status_code == 200 and client.get("/info").json()["unservable"] is None
