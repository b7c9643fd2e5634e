"""/docs in a real browser (Playwright on Debian's Chromium): Swagger UI from the swagger-ui-bundle package
renders every operation of the API, offline, with no "Unable to render this definition"."""

from __future__ import annotations

import httpx
import pytest

from simsearch.service.docs import DOCS_SCHEMA
from tests.integration.service.conftest import TOKEN
from tests.integration.service.test_station_page import CHROMIUM, start_server, sync_playwright

METHODS = ("get", "post", "put", "patch", "delete")


def walk(node):
    """Every dict in a JSON document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_the_service_schema_reads_as_30(client):
    full = client.get("/openapi.json").json()
    docs = client.get(DOCS_SCHEMA, headers={"Authorization": ""}).json()  # open, like /docs
    assert full["openapi"].startswith("3.1") and docs["openapi"] == "3.0.3"
    assert docs["paths"].keys() == full["paths"].keys()
    for node in walk(docs["components"]):
        assert node.get("type") != "null" and not isinstance(node.get("type"), list)
        assert "contentMediaType" not in node and "const" not in node


@pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install playwright)")
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_docs_render_every_operation_in_a_real_browser(index_copy):
    from simsearch.service.app import create_app
    from simsearch.service.settings import ServiceSettings

    inspector, folder = index_copy
    app = create_app(inspector, ServiceSettings(token=TOKEN), folder=folder)
    url, server, thread = start_server(app)
    try:
        operations = sum(method in METHODS for item in httpx.get(f"{url}/openapi.json").json()["paths"].values()
                         for method in item)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            tab = browser.new_page()
            outside = []  # offline: nothing may be fetched from anywhere but the service
            tab.on("request", lambda request: None if request.url.startswith(url) or request.url.startswith("data:")
                   else outside.append(request.url))
            errors = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.goto(f"{url}/docs")
            tab.wait_for_selector(".opblock, .version-pragma, .errors-wrapper, .loading-container h4", timeout=30_000)
            text = tab.inner_text("body")
            assert "Unable to render" not in text and "Failed to load" not in text, text[:500]
            assert tab.locator(".opblock").count() == operations > 10
            tab.locator(".opblock-summary", has_text="/exemplars").first.click()  # an operation opens
            tab.wait_for_selector(".opblock-body", timeout=10_000)
            assert not errors, errors
            assert not outside, outside
            browser.close()
    finally:
        server.should_exit = True
        thread.join(30)
