"""The pages in a real headless Chromium: live queue, Accept / Resolve, per-community access, the map, the report.

Debian's `chromium` driven by Playwright with `executable_path` (nothing downloads a browser).
Pages are checked at a desktop width (1366 px) and a phone width (375 px) for horizontal scrolling and
Chinese text; screenshots go to `test-output/screenshots/` for review.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.events import Reason, TriageMessage
from pipeline.identity import mask_id
from tests.streams.api_helpers import COMMUNITY_A, COMMUNITY_B, RunningWorker, resident_id, scan

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
OUT = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
COMMUNITY_C = ("330106003", 120.28693452538745, 30.428745)
WIDTHS = {"desktop": 1366, "phone": 375}
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


def _signed_in(browser: object, site: RunningWorker, token: str, target: str, width: int = 1280) -> object:
    context = browser.new_context(viewport={"width": width, "height": 900}, is_mobile=width < 500,
                                  device_scale_factor=2 if width < 500 else 1, timezone_id="UTC")
    page = context.new_page()
    page.goto(f"{site.base}{target}")
    assert "/login" in page.url
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}{target}")
    return page


def _card(masked: str) -> str:
    return f"article.card:has(.masked:text-is('{masked}'))"


def _overdue_case(site: RunningWorker, where: tuple[str, float, float] = COMMUNITY_B) -> str:
    """A triage message for a case whose acceptance window ended ten minutes ago, sent to the case agent's
    topic (the dashboard lists it as overdue whether or not the escalation timer has run yet)."""
    agents = site.worker.agents
    now = datetime.now(UTC)
    message = TriageMessage(
        message_id="msg-overdue-0001", case_id="case-overdue-0001", person_key="k-overdue", masked_id="330***********777X",
        name="王五", phone="13900139000", community=where[0], action="transfer", previous_action=None, severity=60,
        due_at=now - timedelta(minutes=10), reasons=[Reason(rule="positive-nat", text="阳性")],
        rules_version=site.worker.runtime.rules_version, flagged_at=now - timedelta(minutes=40), source_event_ids=[])

    async def send() -> None:
        await agents.topics.cases.send(key=message.case_id.encode(), value=message.model_dump_json().encode())

    site.run(send())
    return message.masked_id


def test_a_scan_appears_on_its_community_page_without_reload_and_accept_resolve_work(browser: object, site: RunningWorker) -> None:
    page = _signed_in(browser, site, site.tokens["community_a"], f"/communities/{COMMUNITY_A[0]}")
    page.wait_for_selector("#updated")
    status, body = site.call("POST", "/api/checkpoints/cp-01/scans", scan(), token=site.tokens["checkpoint"])
    assert status == 200 and body["decision"] == "hold"
    posted = time.monotonic()
    masked = body["people"][0]["masked_id"]
    card = _card(masked)
    page.wait_for_selector(card, timeout=2000)
    assert time.monotonic() - posted <= 2.0
    assert page.locator(card).get_attribute("data-status") == "open"
    assert page.locator(f"{card} a[href='tel:13800138000']").count() == 1  # the owning community can call
    assert "卡口暂缓通行" in page.inner_text(f"{card} .action")
    assert page.locator(f"{card} details.reasons").get_attribute("open") is None  # reasons folded

    case_id = page.locator(card).get_attribute("data-case-id")
    page.click(f"{card} button.accept")
    page.wait_for_selector(f"{card}[data-status=accepted]", timeout=5000)
    page.once("dialog", lambda dialog: dialog.accept("home visit done, negative test"))
    page.click(f"{card} button.resolve")
    page.wait_for_selector(f"#done {card}[data-status=resolved]", state="attached", timeout=5000)
    page.click("#done-box summary")  # resolved cases are folded away below the open ones
    page.locator(card, has_text="home visit done, negative test").wait_for(timeout=5000)

    from streams.memory import get_broker

    events = [orjson.loads(r.value) for r in get_broker(site.worker.settings.broker).all_records(
        site.worker.settings.topic("case-events")) if r.key == case_id.encode()]
    assert [e["kind"] for e in events][:2] == ["accepted", "resolved"]
    assert all(e["by"] == f"community:{COMMUNITY_A[0]}" for e in events)
    page.context.close()


@pytest.mark.parametrize("size", WIDTHS)
def test_the_queue_is_chinese_first_and_fits_a_phone_and_a_desktop(browser: object, site: RunningWorker, size: str) -> None:
    for _ in range(3):
        status, body = site.call("POST", "/api/checkpoints/cp-01/scans", scan(people=2), token=site.tokens["checkpoint"])
        assert status == 200
    page = _signed_in(browser, site, site.tokens["community_a"], f"/communities/{COMMUNITY_A[0]}", WIDTHS[size])
    page.wait_for_selector("article.card[data-status=open] .countdown:not(:empty)", timeout=5000)
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    # the first card not yet late: an earlier test of this module may have left an overdue case first in line
    first = page.locator("article.card[data-status=open]:not(.overdue)").first
    for part in (".name", ".masked", ".action", ".due time", ".countdown", "a.tel", ".address", "details.reasons"):
        assert first.locator(part).count() == 1, part
        box = first.locator(part).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTHS[size] + 0.5, part
    assert "剩余" in first.locator(".countdown").inner_text()
    assert "北京时间 (UTC+08:00)" in page.inner_text("#zone-label")
    due = first.locator(".due time").get_attribute("datetime")
    assert due.endswith("+08:00") and first.locator(".due time").inner_text() == f"{due[5:10]} {due[11:16]}"
    assert page.evaluate("document.fonts.check('16px \"Noto Sans CJK SC\"', '社区')")
    page.screenshot(path=str(OUT / f"queue-{size}.png"), full_page=size == "phone")
    page.goto(f"{site.base}/communities/{COMMUNITY_A[0]}?lang=en")
    page.wait_for_selector("article.card .countdown:not(:empty)", timeout=5000)
    assert page.get_attribute("html", "lang") == "en"
    assert "Hold at the checkpoint" in page.inner_text("article.card .action >> nth=0")
    page.goto(f"{site.base}/communities/{COMMUNITY_A[0]}")  # the choice is remembered
    assert page.get_attribute("html", "lang") == "en"
    page.goto(f"{site.base}/communities/{COMMUNITY_A[0]}?lang=zh")
    page.context.close()


def test_community_a_token_on_community_b_page_is_403(browser: object, site: RunningWorker) -> None:
    page = _signed_in(browser, site, site.tokens["community_a"], f"/communities/{COMMUNITY_A[0]}")
    response = page.goto(f"{site.base}/communities/{COMMUNITY_B[0]}")
    assert response.status == 403
    assert "may not act for community" in page.inner_text("#problem")
    api = page.request.get(f"{site.base}/api/communities/{COMMUNITY_B[0]}/cases")
    assert api.status == 403
    page.context.close()


def test_the_dashboard_map_changes_level_when_a_case_opens(browser: object, site: RunningWorker) -> None:
    page = _signed_in(browser, site, site.tokens["admin"], "/dashboard")
    shape = f"#map-communities path.community[data-code='{COMMUNITY_C[0]}']"
    assert page.get_attribute(shape, "data-colour") == "green"
    status, body = site.call("POST", "/api/checkpoints/cp-01/scans", scan(where=COMMUNITY_C), token=site.tokens["checkpoint"])
    assert status == 200 and body["decision"] == "hold"
    page.wait_for_function(
        f"document.querySelector(\"{shape}\").getAttribute('data-colour') !== 'green'", timeout=3000)
    assert page.get_attribute(shape, "data-colour") == "blue"  # one open case in ~5,000 residents: "watch"
    page.click(shape)
    page.wait_for_url(f"{site.base}/communities/{COMMUNITY_C[0]}")
    page.context.close()


@pytest.mark.parametrize("size", WIDTHS)
def test_the_dashboard_explains_its_map_lists_streets_and_overdue_cases_and_fits(browser: object, site: RunningWorker,
                                                                                  size: str) -> None:
    masked = _overdue_case(site)
    site.call("POST", "/api/checkpoints/cp-01/scans", scan(people=2), token=site.tokens["checkpoint"])
    page = _signed_in(browser, site, site.tokens["admin"], "/dashboard", WIDTHS[size])
    page.wait_for_selector(f"#overdue td:text-is('{masked}')", timeout=3000)
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    row = page.locator("#overdue tr", has_text=masked)
    assert "梅北东社区" in row.inner_text() and "立即转运至定点医院" in row.inner_text()
    legend = page.locator("#legend .level")
    assert legend.count() == 6  # five levels and the region outlines
    texts = [legend.nth(i).inner_text() for i in range(5)]
    for text, name in zip(texts, ["高风险", "较高风险", "中风险", "关注", "常态化防控"], strict=True):
        assert name in text
    assert "每千名居民 ≥ 0.5 例严重度 ≥ 60 的未结案件" in texts[0] and "区内有高风险区" in texts[0]
    assert "风险区" in legend.nth(5).inner_text()
    first_street = page.locator("#streets details.street").first
    assert "翠苑街道" in first_street.inner_text()
    assert page.locator("#top-communities tbody tr").first.inner_text().startswith("兰学社区")
    assert int(page.inner_text("#t-overdue")) >= 1
    assert page.evaluate("document.documentElement.scrollHeight") < (4000 if size == "desktop" else 7000)
    page.screenshot(path=str(OUT / f"dashboard-{size}.png"), full_page=True)
    page.click("#view-streets")
    assert page.locator("#map-streets").is_visible() and not page.locator("#map-communities").is_visible()
    assert page.locator("#map-streets path.community").count() == 9
    page.locator("#map").screenshot(path=str(OUT / f"map-streets-{size}.png"))
    page.click("#daily-report")
    page.wait_for_url("**/reports/daily?date=*")
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    assert page.locator("svg.chart").count() >= 2
    assert page.locator("#totals .tile[data-figure=cases]").count() == 1
    assert "翠苑街道" in page.inner_text("table")
    page.screenshot(path=str(OUT / f"report-{size}.png"), full_page=True)
    page.context.close()


def _transfer_case(site: RunningWorker, case_id: str, masked: str) -> None:
    """A transfer case for community A, due in an hour, sent to the case agent's topic."""
    now = datetime.now(UTC)
    message = TriageMessage(
        message_id=f"msg-{case_id}", case_id=case_id, person_key=f"k-{case_id}", masked_id=masked,
        name="赵六", phone="13900139001", community=COMMUNITY_A[0], action="transfer", previous_action=None, severity=60,
        due_at=now + timedelta(hours=1), reasons=[Reason(rule="positive-nat", text="阳性")],
        rules_version=site.worker.runtime.rules_version, flagged_at=now, source_event_ids=[])

    async def send() -> None:
        await site.worker.agents.topics.cases.send(key=case_id.encode(), value=message.model_dump_json().encode())

    site.run(send())


def test_a_transfer_walks_through_its_three_stages_on_the_community_page_with_its_times(browser: object, site: RunningWorker) -> None:
    masked = "330***********888X"
    _transfer_case(site, "case-transfer-0001", masked)
    page = _signed_in(browser, site, site.tokens["community_a"], f"/communities/{COMMUNITY_A[0]}")
    card = _card(masked)
    page.wait_for_selector(card, timeout=5000)
    page.click(f"{card} button.accept")
    page.wait_for_selector(f"{card}[data-status=accepted] button.stage-next[data-stage=dispatched]", timeout=5000)
    assert page.inner_text(f"{card} button.stage-next") == "派车"
    page.click(f"{card} button.stage-next")
    page.wait_for_selector(f"{card} p.stage[data-stage=dispatched]", timeout=5000)
    page.wait_for_selector(f"{card} button.stage-next[data-stage=picked_up]", timeout=5000)
    page.click(f"{card} button.stage-next")
    page.wait_for_selector(f"{card} button.stage-next[data-stage=received]", timeout=5000)
    arrived = (datetime.now(UTC) - timedelta(minutes=12)).isoformat(timespec="seconds")
    answers = iter(["城西集中隔离点", arrived])
    page.on("dialog", lambda dialog: dialog.accept(next(answers)))
    page.click(f"{card} button.stage-next")
    page.wait_for_selector(f"{card} p.stage[data-stage=received]", timeout=5000)
    page.wait_for_selector(f"{card} p.times.reception", timeout=5000)
    assert "城西集中隔离点" in page.inner_text(f"{card} p.stage[data-stage=received]")
    assert page.locator(f"{card} button.stage-next").count() == 0
    reception = page.inner_text(f"{card} p.times.reception")
    assert reception.startswith("接收用时 ") and 11.5 <= float(reception.split()[1]) <= 13.5, reception
    transfer = page.inner_text(f"{card} p.times.transfer")
    assert transfer.startswith("转运用时 ") and 0 <= float(transfer.split()[1]) < 5, transfer
    page.screenshot(path=str(OUT / "transfer-stages.png"), full_page=True)

    from streams.memory import get_broker

    broker = get_broker(site.worker.settings.broker)
    events = [orjson.loads(r.value) for r in broker.all_records(site.worker.settings.topic("case-events"))
              if r.key == b"case-transfer-0001"]
    assert [e["kind"] for e in events] == ["accepted", "dispatched", "picked_up", "received"]
    assert events[-1]["site"] == "城西集中隔离点" and events[-1]["arrived_at"]
    queue = [orjson.loads(r.value) for r in broker.all_records(site.worker.settings.topic(f"triage.{COMMUNITY_A[0]}"))]
    assert [m["detail"]["stage"] for m in queue if m.get("kind") == "stage" and m["case_id"] == "case-transfer-0001"] == \
        ["dispatched", "picked_up", "received"]
    page.context.close()


def _post_input(site: RunningWorker, path: str, document: dict, token: str) -> dict:
    status, body = site.call("POST", path, document, token=site.tokens[token])
    assert status in (200, 202), body
    return body


def test_the_page_follows_a_raised_case_and_drops_a_lifted_hold(browser: object, site: RunningWorker) -> None:
    """A case raised from test_within_24h to transfer shows the transfer's 30-minute deadline; a hold lifted by a
    late negative result leaves the open queue, on the page itself and without a reload."""
    from playwright.sync_api import expect

    from tests.streams.api_helpers import declaration, nat_result

    page = _signed_in(browser, site, site.tokens["community_a"], f"/communities/{COMMUNITY_A[0]}")
    _post_input(site, "/api/declarations", declaration(431), "admin")
    raised_card = _card(mask_id(resident_id(431)))
    page.wait_for_selector(f"#queue {raised_card}[data-status=open]", timeout=15000)
    first_text = page.get_attribute(f"{raised_card} .due time", "datetime")
    first_due = datetime.fromisoformat(first_text)
    assert first_due - datetime.now(UTC) > timedelta(hours=23)
    positive = nat_result(serial=431)
    positive["result"] = "positive"
    sent = datetime.now(UTC)
    _post_input(site, "/api/nat-results", positive, "lab")
    expect(page.locator(f"{raised_card} .due time")).not_to_have_attribute("datetime", first_text, timeout=15000)
    due = datetime.fromisoformat(page.get_attribute(f"{raised_card} .due time", "datetime"))
    assert sent - timedelta(seconds=1) <= due <= sent + timedelta(minutes=30, seconds=5), due
    assert "转运" in page.inner_text(f"{raised_card} .action")
    assert page.locator(f"#queue {raised_card}").count() == 1

    held = _post_input(site, "/api/checkpoints/cp-01/scans", scan(serial=432), "checkpoint")
    assert held["people"][0]["action"] == "hold"
    held_card = _card(held["people"][0]["masked_id"])
    page.wait_for_selector(f"#queue {held_card}[data-status=open]", timeout=15000)
    _post_input(site, "/api/nat-results", nat_result(serial=432), "lab")
    page.wait_for_selector(f"#queue {held_card}", state="detached", timeout=15000)
    assert page.locator(f"#queue {held_card}").count() == 0
    shown = page.locator("#queue article.card").count()
    assert page.locator("#more").is_visible() == (int(page.inner_text("#count-open")) > shown)  # "show more" only when more
    page.screenshot(path=str(OUT / "cases-follow-person.png"), full_page=True)
    page.context.close()
