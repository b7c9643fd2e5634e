"""The inspection station's API in-process (TestClient): history, review with the score before and after, undo,
the audit log, exemplar thumbnails, the manual threshold and its staleness, drift, cross-site refusals."""

from __future__ import annotations


def test_the_page_paths_open_no_other_path_without_the_token():
    """"/" and "/ui/" are pages, not folders: a request below them still needs the token before its body is read."""
    from simsearch.service.middleware import AccessGuardMiddleware
    from simsearch.service.station_routes import PAGE_PATHS

    guard = AccessGuardMiddleware(None, token="t", open_paths={"/healthz", "/docs-assets/"}, max_requests=4,
                                  open_pages=PAGE_PATHS)
    assert guard._authorised({"path": "/", "headers": []}) and guard._authorised({"path": "/ui/", "headers": []})
    assert guard._authorised({"path": "/docs-assets/swagger-ui.css", "headers": []})  # a real folder stays open
    for path in ("/score", "/exemplars", "/ui/api/history", "/info"):
        assert not guard._authorised({"path": path, "headers": []}), path
