"""The pages in a real headless Chromium: live queue, Accept / Resolve, per-community access, the live map.

Debian's `chromium` driven by Playwright with `executable_path` (nothing downloads a browser).
Screenshots go to `test-output/browser/`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.streams.api_helpers import COMMUNITY_A, COMMUNITY_B, RunningWorker, scan, start_worker

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
OUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"
COMMUNITY_C = ("330106003", 120.28693452538745, 30.428745)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorker]:
    running = start_worker(tmp_path_factory.mktemp("access") / "access.toml")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _signed_in(browser: object, site: RunningWorker, token: str, target: str) -> object:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{site.base}{target}")
    assert "/login" in page.url
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}{target}")
    return page


def test_a_scan_appears_on_its_community_page_without_reload_and_accept_resolve_work(browser: object, site: RunningWorker) -> None:
    page = _signed_in(browser, site, site.tokens["community_a"], f"/communities/{COMMUNITY_A[0]}")
    page.wait_for_selector("#updated")
    status, body = site.call("POST", "/api/checkpoints/cp-01/scans", scan(), token=site.tokens["checkpoint"])
    assert status == 200 and body["decision"] == "hold"
    posted = time.monotonic()
    masked = body["people"][0]["masked_id"]
    row = f"tr:has(td:text-is('{masked}'))"
    page.wait_for_selector(row, timeout=2000)
    assert time.monotonic() - posted <= 2.0
    assert page.locator(row).get_attribute("data-status") == "open"
    assert page.locator(f"{row} td", has_text="13800138000").count() == 1  # the owning community sees the phone
    page.screenshot(path=str(OUT / "community-queue-new-case.png"), full_page=True)

    case_id = page.locator(row).get_attribute("data-case-id")
    page.click(f"{row} button.accept")
    page.wait_for_selector(f"{row}[data-status=accepted]", timeout=5000)
    page.once("dialog", lambda dialog: dialog.accept("home visit done, negative test"))
    page.click(f"{row} button.resolve")
    page.wait_for_selector(f"{row}[data-status=resolved]", timeout=5000)
    page.locator(row, has_text="home visit done, negative test").wait_for(timeout=5000)
    page.screenshot(path=str(OUT / "community-queue-resolved.png"), full_page=True)

    from streams.memory import get_broker

    events = [orjson.loads(r.value) for r in get_broker(site.worker.settings.broker).all_records(
        site.worker.settings.topic("case-events")) if r.key == case_id.encode()]
    assert [e["kind"] for e in events][:2] == ["accepted", "resolved"]
    assert all(e["by"] == f"community:{COMMUNITY_A[0]}" for e in events)
    page.context.close()


def test_community_a_token_on_community_b_page_is_403(browser: object, site: RunningWorker) -> None:
    page = _signed_in(browser, site, site.tokens["community_a"], f"/communities/{COMMUNITY_A[0]}")
    response = page.goto(f"{site.base}/communities/{COMMUNITY_B[0]}")
    assert response.status == 403
    assert "may not act for community" in page.inner_text("#problem")
    api = page.request.get(f"{site.base}/api/communities/{COMMUNITY_B[0]}/cases")
    assert api.status == 403
    page.screenshot(path=str(OUT / "community-b-refused.png"))
    page.context.close()


def test_the_dashboard_map_changes_colour_when_a_case_opens(browser: object, site: RunningWorker) -> None:
    page = _signed_in(browser, site, site.tokens["admin"], "/dashboard")
    shape = f"path.community[data-code='{COMMUNITY_C[0]}']"
    assert page.get_attribute(shape, "data-colour") == "green"
    page.screenshot(path=str(OUT / "dashboard-before.png"), full_page=True)
    status, body = site.call("POST", "/api/checkpoints/cp-01/scans", scan(where=COMMUNITY_C), token=site.tokens["checkpoint"])
    assert status == 200 and body["decision"] == "hold"
    page.wait_for_function(
        f"document.querySelector(\"{shape}\").getAttribute('data-colour') !== 'green'", timeout=3000)
    assert page.get_attribute(shape, "data-colour") == "yellow"  # hold: severity 30 of 60
    page.screenshot(path=str(OUT / "dashboard-after.png"), full_page=True)
    page.click(shape)
    page.wait_for_url(f"{site.base}/communities/{COMMUNITY_C[0]}")
    page.context.close()
