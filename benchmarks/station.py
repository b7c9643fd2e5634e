"""The inspection station in a real browser (Playwright on Debian's Chromium): how long the page takes to paint
the live view with N history items, and the click-to-new-score round trip of a review (add the image as an
exemplar, score it again, show it) for 1024x768 BMP uploads, with its undo, in the browser and through the
API alone. The clicks are timed once the server's calibration goods (background work at start) are done.

    python benchmarks/station.py [--index FOLDER --weights FILE] [--items 200] [--clicks 5] [--loads 3]
                                 [--history-on-disk] [--json]

With ../shared's bottle data it serves the bottle index (built once under artifacts/service_bench/, as
benchmarks/service_load.py does; the clicks change a temporary copy), else a small synthetic random-weight
index. Needs `pip install playwright` and `apt-get install chromium` (Playwright's own browser download is
not used).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything loads an OpenMP runtime

import argparse
import concurrent.futures
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_load import Server, ensure_index  # noqa: E402

TOKEN = "station-benchmark-token-0123456789"
SIDE = (1024, 768)  # width, height of the uploads


def bmp_uploads(files: list[Path], count: int) -> list[bytes]:
    """`count` distinct 1024x768 BMPs made from the images to score (cycled)."""
    out = []
    for path in files[:count]:
        buffer = io.BytesIO()
        Image.open(path).convert("RGB").resize(SIDE).save(buffer, format="BMP")
        out.append(buffer.getvalue())
    return out


def wait_for_reference(url: str, limit_s: float = 600) -> float:
    """Wait until the server's calibration goods (computed in the background at start) are done, so the clicks
    are not timed against that work; seconds waited."""
    start = time.perf_counter()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while time.perf_counter() - start < limit_s:
        state = httpx.get(f"{url}/ui/api/drift", headers=headers, timeout=60).json()["reference_info"]["state"]
        if state != "computing":
            break
        time.sleep(0.5)
    return time.perf_counter() - start


def api_clicks(url: str, count: int) -> tuple[list[float], list[float]]:
    """The review click and its undo through the page's API alone (no browser): seconds each."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    clicks, undos = [], []
    with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
        queue = client.get("/ui/api/review").json()["queue"]
        for item in queue[-count:]:  # the page's clicks take the front of the queue
            start = time.perf_counter()
            client.post(f"/ui/api/history/{item['id']}/review", json={"action": "good"}).raise_for_status()
            clicks.append(time.perf_counter() - start)
            start = time.perf_counter()
            client.post(f"/ui/api/history/{item['id']}/undo").raise_for_status()
            undos.append(time.perf_counter() - start)
    return clicks, undos


def fill_history(url: str, uploads: list[bytes], items: int) -> float:
    """Score `items` uploads through the API (4 at a time); seconds taken."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    start = time.perf_counter()
    with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
        def one(number: int) -> None:
            image = uploads[number % len(uploads)]
            response = client.post("/score", files={"image": (f"part-{number:04d}.bmp", image, "image/bmp")})
            response.raise_for_status()

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(items)))
    return time.perf_counter() - start


PAINTED = """(count) => {
  window.__painted = null;
  const check = () => {
    if (document.querySelectorAll('#live-rows tr[data-id]').length >= count) {
      window.__painted = performance.now();
      return;
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}"""


# In the page: when a review button is clicked, and when the card's new score is painted (the frame after the
# result is in the document), by the page's own clock: the round trip without Playwright's polling.
CLICK_CLOCK = """(() => {
  window.__clickAt = null; window.__shownAt = null;
  document.addEventListener('click', (event) => {
    const target = event.target;
    if (target instanceof Element && target.matches('#review-queue button.good')) {
      window.__clickAt = performance.now(); window.__shownAt = null;
    }
  }, true);
  document.addEventListener('DOMContentLoaded', () => {
    new MutationObserver(() => {
      if (window.__clickAt !== null && window.__shownAt === null && document.querySelector('#review-queue .result')) {
        requestAnimationFrame(() => { window.__shownAt = performance.now(); });
      }
    }).observe(document.body, { childList: true, subtree: true });
  });
})();"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--items", type=int, default=200, help="history items on the page")
    parser.add_argument("--clicks", type=int, default=5, help="review clicks timed (each undone after)")
    parser.add_argument("--loads", type=int, default=3, help="page loads timed")
    parser.add_argument("--history-on-disk", action="store_true", help="serve with --history-on-disk, and time "
                        "a restart that reads the history back")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("playwright is not installed: pip install playwright")
    if not Path(args.chromium).is_file():
        sys.exit(f"no chromium at {args.chromium}: apt-get install -y chromium, or pass --chromium")

    index, weights, score_files, _ = ensure_index(args)
    uploads = bmp_uploads(score_files, 24)
    figures: dict = {"index": str(index), "items": args.items, "upload": f"{SIDE[0]}x{SIDE[1]} BMP",
                     "upload_bytes": len(uploads[0])}
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "index"
        shutil.copytree(index, copy, ignore=shutil.ignore_patterns("station"))
        token = Path(scratch) / "token"
        token.write_text(TOKEN)
        token.chmod(0o600)
        options = ["--token-file", str(token), "--history", str(args.items),
                   *(["--history-on-disk"] if args.history_on_disk else [])]
        server = Server(copy, weights, *options)
        try:
            figures["fill_s"] = round(fill_history(server.url, uploads, args.items), 1)
            figures["reference_wait_s"] = round(wait_for_reference(server.url), 1)
            if args.history_on_disk:
                server.terminate()
                start = time.perf_counter()
                server = Server(copy, weights, *options)
                figures["restart_s"] = round(time.perf_counter() - start, 1)
                figures["history_after_restart"] = len(httpx.get(
                    f"{server.url}/ui/api/history", headers={"Authorization": f"Bearer {TOKEN}"}).json()["items"])
                figures["reference_wait_s"] += round(wait_for_reference(server.url), 1)
            history = httpx.get(f"{server.url}/ui/api/history", headers={"Authorization": f"Bearer {TOKEN}"})
            figures["history_json_bytes"] = len(history.content)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_init_script(f"sessionStorage.setItem('simsearch-token', {json.dumps(TOKEN)});"
                                        f"({PAINTED})({args.items});")
                painted, contentful = [], []
                for _ in range(args.loads):
                    page = context.new_page()  # a fresh load each time (sessionStorage is per tab: set above)
                    page.goto(server.url + "/#live")
                    deadline = time.monotonic() + 120
                    # polled from outside: the page's CSP (no eval) refuses Playwright's wait_for_function
                    while page.evaluate("window.__painted") is None and time.monotonic() < deadline:
                        time.sleep(0.05)
                    painted.append(page.evaluate("window.__painted"))
                    contentful.append(page.evaluate(
                        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"))
                    page.close()
                page = context.new_page()
                page.add_init_script(CLICK_CLOCK)
                figures["rows_painted_ms"] = [round(v, 1) for v in painted]
                figures["rows_painted_ms_median"] = round(statistics.median(painted), 1)
                figures["first_contentful_paint_ms_median"] = round(statistics.median(
                    [v for v in contentful if v is not None] or [float("nan")]), 1)

                page.goto(server.url + "/#review")
                page.wait_for_selector("#review-queue .card")
                clicks, undos, in_page = [], [], []
                for _ in range(args.clicks):
                    card = page.locator("#review-queue .card:not(:has(.result))").first
                    card_id = card.get_attribute("data-id")
                    start = time.perf_counter()
                    card.locator("button.good").click()
                    page.locator(f"#review-queue .card[data-id='{card_id}'] .result").wait_for(timeout=60_000)
                    clicks.append(time.perf_counter() - start)
                    while page.evaluate("window.__shownAt") is None:
                        time.sleep(0.01)
                    in_page.append(page.evaluate("window.__shownAt - window.__clickAt"))
                    start = time.perf_counter()
                    page.locator(f"#review-queue .card[data-id='{card_id}'] button.undo").click()
                    page.locator(f"#review-queue .card[data-id='{card_id}'] button.good").wait_for(timeout=60_000)
                    undos.append(time.perf_counter() - start)
                figures["click_to_new_score_ms"] = [round(1000 * v, 1) for v in clicks]
                figures["click_to_new_score_ms_median"] = round(1000 * statistics.median(clicks), 1)
                figures["undo_ms_median"] = round(1000 * statistics.median(undos), 1)
                figures["click_to_new_score_in_page_ms"] = [round(v, 1) for v in in_page]
                figures["click_to_new_score_in_page_ms_median"] = round(statistics.median(in_page), 1)
                browser.close()
            clicks, undos = api_clicks(server.url, args.clicks)
            figures["api_click_ms"] = [round(1000 * v, 1) for v in clicks]
            figures["api_click_ms_median"] = round(1000 * statistics.median(clicks), 1)
            figures["api_undo_ms_median"] = round(1000 * statistics.median(undos), 1)
        finally:
            server.kill()
    if args.json:
        print(json.dumps(figures))
        return
    print(f"index {figures['index']}, {args.items} history items of {figures['upload']} uploads "
          f"({figures['upload_bytes'] / 1e6:.2f} MB each), history JSON {figures['history_json_bytes'] / 1e3:.0f} kB")
    print(f"live view, {args.items} rows painted: median {figures['rows_painted_ms_median']} ms from navigation "
          f"({figures['rows_painted_ms']}); first contentful paint {figures['first_contentful_paint_ms_median']} ms")
    print(f"review click -> new score shown: median {figures['click_to_new_score_ms_median']} ms "
          f"({figures['click_to_new_score_ms']}); undo -> old score: median {figures['undo_ms_median']} ms")
    print(f"  by the page's own clock (click event -> the new score painted): median "
          f"{figures['click_to_new_score_in_page_ms_median']} ms ({figures['click_to_new_score_in_page_ms']})")
    print(f"the same through the API alone (add, score again, audit; no browser): median "
          f"{figures['api_click_ms_median']} ms ({figures['api_click_ms']}); undo {figures['api_undo_ms_median']} ms")
    if "restart_s" in figures:
        print(f"--history-on-disk: restart {figures['restart_s']} s, {figures['history_after_restart']} history "
              "items read back")


if __name__ == "__main__":
    main()
