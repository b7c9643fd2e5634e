"""The service scores one blank image as it starts (its embedder's first run and the bank's search cells paid
there, not by the first click); a warm-up that fails never takes the service down."""

import threading

from tests.integration.service.conftest import make_client


def test_the_service_warms_its_snapshot_up_once_as_it_starts(index_copy, monkeypatch):
    from simsearch.service import app as app_module

    warmed, done = [], threading.Event()

    def record(inspector):
        warmed.append(inspector)
        done.set()

    monkeypatch.setattr(app_module, "warm_up", record)
    with make_client(index_copy) as client:
        assert done.wait(30)
        assert client.get("/healthz").status_code == 200
    assert len(warmed) == 1 and warmed[0].index_.counts() == index_copy[0].index_.counts()


def test_a_warm_up_scores_a_blank_image_and_swallows_a_failure(index_copy, caplog):
    from simsearch.service.app import warm_up

    inspector, _ = index_copy
    calls = []
    original = inspector.score
    inspector.score = lambda images, *a, **k: calls.append(images) or original(images, *a, **k)
    warm_up(inspector)
    assert len(calls) == 1 and calls[0].shape == (64, 64, 3) and not calls[0].any()

    def broken(*args, **kwargs):
        raise RuntimeError("no bank")

    inspector.score = broken
    with caplog.at_level("INFO", logger="simsearch.service"):
        warm_up(inspector)
    assert "warm-up score failed: no bank" in caplog.text
