"""The inspection station in a real browser (Playwright on Debian's Chromium): a wrong token is refused, the live
view lists the service's scores, a reject is reviewed, a defect taught (the score changes), undone, the
threshold moved and applied; hostile file names and types stay text. Screenshots of each view go to
docs/station/*.png (docs/station.md)."""

from __future__ import annotations

import re
import shutil
import threading
import time

import httpx
import numpy as np
import pytest

from simsearch.index import ExemplarIndex
from tests.conftest import ROOT, part_image
from tests.integration.service.conftest import TOKEN, png_bytes
from tests.integration.service.test_station_api import build_station_index

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = ROOT / "docs" / "station"
HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"
HOSTILE_TYPE = "<b>crack</b>"

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the reason is given below
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install playwright)"),
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium)"),
]


def start_server(app) -> tuple[str, object, threading.Thread]:
    """uvicorn over `app` on a free loopback port, in a thread (the tests own the process)."""
    import uvicorn

    from simsearch.service.server import bind

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


@pytest.fixture(scope="module")
def served(small_embedder, tmp_path_factory):
    """A running server over a station index, with 8 scored images (2 of them defects) in its history."""
    from simsearch.inspector import Inspector
    from simsearch.service.app import create_app
    from simsearch.service.settings import ServiceSettings

    root = tmp_path_factory.mktemp("station-page")
    folder = root / "index"
    build_station_index(small_embedder, folder, root / "images")
    app = create_app(Inspector.load(folder, embedder=small_embedder),
                     ServiceSettings(token=TOKEN, token_name="shift-lead.token", drift_window=4), folder=folder)
    url, server, thread = start_server(app)
    app.state.service.station.wait_for_reference(60)
    rng = np.random.default_rng(12)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for i in range(8):
            name = HOSTILE_NAME if i == 6 else f"line-3/part-{i:03d}.png"
            pixels = part_image(rng, defect=i in (3, 6))
            assert client.post("/score", files={"image": (name, png_bytes(pixels), "image/png")}).status_code == 200
    yield url, folder, headers
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def page(served):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        dialogs, errors = [], []
        tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.dialogs, tab.errors = dialogs, errors
        yield tab
        browser.close()
    assert not dialogs, f"a script ran from user text: {dialogs}"
    assert not errors, f"page errors: {errors}"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_wrong_token_is_refused_then_live_view(page, served):
    url, _, _ = served
    page.goto(url + "/")
    page.fill("#token", "not-the-token-at-all")
    page.click("#login-button")
    expect(page.locator("#login-error")).to_contain_text("refused")
    assert page.locator("#app").is_hidden()
    assert page.evaluate("sessionStorage.getItem('simsearch-token')") is None
    page.fill("#token", TOKEN)
    page.click("#login-button")
    expect(page.locator("#who")).to_contain_text("shift-lead.token")
    assert TOKEN not in page.url
    rows = page.locator("#live-rows tr[data-id]")
    expect(rows).to_have_count(8)
    # newest first, the hostile name shown as text, never as markup
    expect(rows.nth(1)).to_contain_text(HOSTILE_NAME)
    assert page.locator("img[src='x']").count() == 0
    expect(page.locator("#live-rows .badge.reject")).not_to_have_count(0)
    first = rows.first
    first.locator(".details-button").click()
    page.locator("#live-rows .details-row").first.get_by_text("show heatmap and boxes").click()
    expect(page.locator("img.overlay")).to_have_count(1)
    expect(page.locator(".details").first).to_contain_text("nearest good: #")
    expect(page.locator(".details img.thumb")).not_to_have_count(0)  # the exemplars, fetched with the token
    shot(page, "live")


def test_review_a_reject_teach_a_defect_and_undo(page, served):
    url, folder, headers = served
    page.goto(url + "/#review")
    cards = page.locator("#review-queue .card")
    expect(cards.first.locator(".badge")).to_have_text("reject")  # rejects first
    # review a reject as good: it becomes its own nearest good, its score drops at once
    reject = cards.first
    reject_id = int(reject.get_attribute("data-id"))
    before = httpx.get(f"{url}/ui/api/history?after={reject_id - 1}", headers=headers).json()["items"][-1]
    reject.locator("button.good").click()
    expect(page.locator(f"#review-queue .card[data-id='{reject_id}'] .result")).to_contain_text("new score")
    item = httpx.get(f"{url}/ui/api/history?after={reject_id - 1}", headers=headers).json()["items"][-1]
    assert item["review"]["after"]["score"] < before["score"]

    # teach the other reject as a defect of a new (hostile) type; the score changes (defect-aware)
    other = page.locator("#review-queue .card:has(.badge.reject):not(:has(.result))").first
    other_id = int(other.get_attribute("data-id"))
    other.locator("input.type").fill(HOSTILE_TYPE)
    other.locator("button.defect").click()
    result = page.locator(f"#review-queue .card[data-id='{other_id}'] .result")
    expect(result).to_contain_text(f"defect ({HOSTILE_TYPE}) → new score")
    expect(result).to_contain_text(f"looks like {HOSTILE_TYPE}")
    taught = httpx.get(f"{url}/ui/api/history?after={other_id - 1}", headers=headers).json()["items"][-1]
    assert taught["review"]["after"]["score"] > taught["score"]
    exemplar_id = taught["review"]["exemplar"]
    assert ExemplarIndex.load(folder).exemplars[exemplar_id].defect_type == HOSTILE_TYPE
    expect(page.locator("#audit-rows tr").first).to_contain_text(HOSTILE_TYPE)
    expect(page.locator("#audit-rows tr").first).to_contain_text("shift-lead.token")
    assert page.locator("b").count() == 0  # the type stayed text
    shot(page, "review")

    # undo: the exemplar leaves the index, the card is back in the queue with the old score
    page.locator(f"#review-queue .card[data-id='{other_id}'] button.undo").click()
    expect(page.locator(f"#review-queue .card[data-id='{other_id}'] button.defect")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("undone")
    assert exemplar_id not in ExemplarIndex.load(folder).exemplars
    audit = [line for line in (folder / "station" / "audit.jsonl").read_text().splitlines() if line]
    assert len(audit) == 3 and '"undo"' in audit[-1]


def test_exemplars_view(page, served):
    url, folder, _ = served
    page.goto(url + "/#exemplars")
    index = ExemplarIndex.load(folder)
    tiles = page.locator("#ex-grid .tile")
    expect(tiles).to_have_count(len(index.exemplars))
    page.select_option("#ex-label", "defect")
    expect(tiles).to_have_count(index.counts()["defect"])
    expect(page.locator("#ex-grid .tile img").first).to_have_attribute("src", re.compile("^blob:"))
    page.select_option("#ex-label", "")
    expect(tiles).to_have_count(len(index.exemplars))
    shot(page, "exemplars")


def test_relabel_from_the_exemplars_view_and_undo(page, served):
    url, folder, _ = served
    index = ExemplarIndex.load(folder)
    good = min(e.id for e in index.exemplars.values() if e.label == "good" and not e.path.startswith("station:"))
    sha256 = index.exemplars[good].sha256
    page.goto(url + "/#exemplars")
    tile = page.locator(f"#ex-grid .tile[data-id='{good}']")
    tile.locator("button.relabel").click()
    tile.locator("select.relabel-label").select_option("defect")
    tile.locator("input.relabel-type").fill("<i>scratch</i>")
    tile.locator("button.relabel-apply").click()
    result = page.locator("#ex-grid .tile:has(.result)")
    expect(result.locator(".result")).to_have_text(f"relabelled from #{good} good")
    expect(result.locator(".label")).to_contain_text("defect · <i>scratch</i>")
    assert page.locator("i").count() == 0  # the type stayed text
    index = ExemplarIndex.load(folder)
    [new] = [e for e in index.exemplars.values() if e.sha256 == sha256]
    assert good not in index.exemplars and (new.label, new.defect_type) == ("defect", "<i>scratch</i>")
    assert result.get_attribute("data-id") == str(new.id)
    shot(page, "relabel")
    audit = (folder / "station" / "audit.jsonl").read_text().splitlines()[-1]
    assert '"action": "relabel"' in audit and '"who": "shift-lead.token"' in audit and f'"was": {good}' in audit
    # undo: back to good (under another new id: ids are never reused), audited as the undo
    result.locator("button.undo-relabel").click()
    expect(page.locator("#status")).to_contain_text("good again")
    [back] = [e for e in ExemplarIndex.load(folder).exemplars.values() if e.sha256 == sha256]
    assert back.label == "good" and back.id not in (good, new.id)
    expect(page.locator(f"#ex-grid .tile[data-id='{back.id}'] .label")).to_contain_text("good")
    assert '"action": "undo relabel"' in (folder / "station" / "audit.jsonl").read_text().splitlines()[-1]
    # an exemplar taught from an upload has no file on the server to embed again: no relabel offered
    taught = max(e.id for e in ExemplarIndex.load(folder).exemplars.values() if e.path.startswith("station:"))
    expect(page.locator(f"#ex-grid .tile[data-id='{taught}'] button.relabel")).to_be_disabled()


def test_move_the_threshold_and_apply(page, served):
    url, folder, _ = served
    page.goto(url + "/#threshold")
    stored = ExemplarIndex.load(folder).threshold["value"]
    expect(page.locator("#th-warning")).to_contain_text("earlier generation")  # exemplars were taught since
    expect(page.locator("#cm-tn")).not_to_have_text("")
    goods_passed = int(page.locator("#cm-tn").text_content())
    lower = stored * 0.8
    page.fill("#th-value", str(lower))
    page.locator("#th-value").dispatch_event("change")
    expect(page.locator("#cm-fp")).not_to_have_text("0")  # lower: some goods are now false alarms
    assert int(page.locator("#cm-tn").text_content()) < goods_passed
    expect(page.locator("#th-far")).to_contain_text("points")
    page.fill("#th-reason", "catch faint spots <script>")
    shot(page, "threshold")  # moved, before it is applied
    page.click("#th-apply")
    expect(page.locator("#th-result")).to_contain_text("stored")
    record = ExemplarIndex.load(folder).threshold
    assert record["value"] == pytest.approx(lower) and record["policy"] == "manual"
    assert record["reason"].startswith("catch faint spots <script>")
    expect(page.locator("#th-warning")).to_be_hidden()
    expect(page.locator("#th-current")).to_contain_text("<script>")


def test_drift_view(page, served):
    url, _, _ = served
    page.goto(url + "/#drift")
    expect(page.locator("#drift-rows tr")).not_to_have_count(0)
    expect(page.locator("#drift-info")).to_contain_text("calibration goods: ready (12 scores)")
    shot(page, "drift")

