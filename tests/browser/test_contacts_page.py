"""The contact chain page in a real headless Chromium: reached from the dashboard, the index case's places
and each contact on the map and in the table, in Chinese, without sideways scrolling on a phone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.identity import mask_id
from tests.browser.test_pages import NO_SIDEWAYS_SCROLL, OUT, _signed_in
from tests.pipeline.test_contacts import INDEX, NEIGHBOUR, RIDER, RIDER2
from tests.streams.api_helpers import RunningWorker
from tests.streams.contact_site import traced_site

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningWorker, str]]:
    running, key = traced_site(tmp_path_factory.mktemp("access") / "access.toml")
    try:
        yield running, key
    finally:
        running.stop()


def test_chain_page_from_the_dashboard_shows_places_contacts_and_map(browser: object, site: tuple[RunningWorker, str]) -> None:
    running, key = site
    page = _signed_in(browser, running, running.tokens["admin"], "/dashboard")
    index_masked = mask_id(INDEX["id_number"])
    page.click(f"#index-cases a:text-is('{index_masked}')")
    page.wait_for_url(f"{running.base}/contacts/{key}")
    assert page.inner_text("#index-masked") == index_masked
    assert page.inner_text("h1").startswith("流调链")
    rows = page.locator("#contacts tbody tr")
    assert rows.count() == 3
    seen = {(rows.nth(i).get_attribute("data-degree"), rows.nth(i).get_attribute("data-rule"),
             rows.nth(i).locator("td").nth(1).inner_text()) for i in range(3)}
    assert seen == {
        ("close", "close-contact-vehicle", mask_id(RIDER["id_number"])),
        ("close", "close-contact-place", mask_id(NEIGHBOUR["id_number"])),
        ("secondary", "secondary-contact-vehicle", mask_id(RIDER2["id_number"])),
    }
    assert "密切接触者" in page.inner_text("#contacts") and "cp-01" in page.inner_text("#contacts")
    assert page.locator("#index-places tbody tr").count() == 2
    svg = page.locator("#chain-map svg")
    assert svg.locator("[data-kind=index]").count() == 2
    assert svg.locator("[data-kind=close]").count() == 2 and svg.locator("[data-kind=secondary]").count() == 1
    box = svg.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    page.screenshot(path=str(OUT / "contacts-desktop.png"), full_page=True)
    page.context.close()


def test_chain_page_fits_a_phone(browser: object, site: tuple[RunningWorker, str]) -> None:
    running, key = site
    page = _signed_in(browser, running, running.tokens["admin"], f"/contacts/{key}", width=375)
    assert page.evaluate(NO_SIDEWAYS_SCROLL), "the page scrolls sideways on a phone"
    page.screenshot(path=str(OUT / "contacts-phone.png"), full_page=True)
    page.context.close()


def test_chain_page_needs_an_admin(browser: object, site: tuple[RunningWorker, str]) -> None:
    running, key = site
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{running.base}/contacts/{key}")
    assert "/login" in page.url
    context.close()


