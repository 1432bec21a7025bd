"""The dashboard's key-group section in a real headless Chromium: the rate bars follow the stream, and today's
checkpoint coverage lists the registered vehicle that no checkpoint saw."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.coverage import enterprise_to_json, parse_registry
from pipeline.rosters import roster_rows
from streams.memory import get_broker
from tests.browser.test_pages import NO_SIDEWAYS_SCROLL, OUT, _signed_in
from tests.key_group_data import A, B, nat, registry_csv, results, roster_csv, scan
from tests.streams.api_helpers import RunningWorker

pytestmark = pytest.mark.browser


def test_dashboard_shows_group_rates_live_and_unchecked_vehicles(site: RunningWorker, browser: object) -> None:
    settings = site.worker.settings
    broker = get_broker(settings.broker)
    now = datetime.now(UTC).replace(microsecond=0)
    for row in roster_rows(roster_csv("330106001"), "roster.csv", submitted_at=now):
        broker.append(settings.topic("rosters"), None, row)
    for value in results(now):
        broker.append(settings.topic("nat-results"), None, value)
    for e in parse_registry(registry_csv(), "registry.csv", secret=settings.secret_bytes)[0]:
        broker.append(settings.topic("key-enterprises"), e.id.encode(), enterprise_to_json(e))
    broker.append(settings.topic("checkpoint-scans"), None, scan("s-b1", now - timedelta(minutes=20), "浙A·12345", [A]))
    kg = site.worker.agents.key_groups
    deadline = time.monotonic() + 30
    while kg.counts["enrolled"] < 5 and time.monotonic() < deadline:
        time.sleep(0.1)

    page = _signed_in(browser, site, site.tokens["admin"], "/dashboard", width=1366)
    page.wait_for_function("document.querySelector('#kg-chart .rate-row[data-group=cold_chain]') !== null")
    assert page.text_content("#kg-chart .rate-row[data-group=cold_chain] .pct") == "33.3%"
    page.wait_for_function("document.querySelector('#coverage tr[data-enterprise=E02]') !== null", timeout=15000)
    assert "浙B11111" in page.text_content("#coverage tr[data-enterprise=E02]")
    assert "浙A67890" in page.text_content("#coverage tr[data-enterprise=E01]")
    assert "重点人群核酸检测" in page.text_content("#key-groups")
    page.wait_for_function("document.querySelectorAll('#kg-street-chart .rate-row').length >= 1")

    broker.append(settings.topic("nat-results"), None, nat("n-b2", B, now - timedelta(hours=3)))
    page.wait_for_function(
        "document.querySelector('#kg-chart .rate-row[data-group=cold_chain] .pct').textContent === '66.7%'", timeout=15000)
    page.screenshot(path=str(OUT / "dashboard-key-groups-desktop.png"), full_page=True)
    page.context.close()

    phone = _signed_in(browser, site, site.tokens["admin"], "/dashboard", width=375)
    phone.wait_for_function("document.querySelector('#kg-chart .rate-row') !== null")
    assert phone.evaluate(NO_SIDEWAYS_SCROLL)
    phone.screenshot(path=str(OUT / "dashboard-key-groups-phone.png"), full_page=True)
    phone.context.close()

