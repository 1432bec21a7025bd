"""A request from a person under management on the community page, in a real headless Chromium: logged for the
person, answered, and its response time shown (on the card, and as the median on the dashboard), at a desktop
width and at 375 px with no sideways scrolling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from pipeline.events import Reason, TriageMessage
from tests.browser.test_pages import NO_SIDEWAYS_SCROLL, OUT, WIDTHS, _card, _signed_in
from tests.streams.api_helpers import COMMUNITY_A, RunningWorker

pytestmark = pytest.mark.browser


def _managed_case(site: RunningWorker, case_id: str, masked: str) -> None:
    """A home-isolation case of community A, sent to the case agent's topic."""
    now = datetime.now(UTC)
    message = TriageMessage(
        message_id=f"msg-{case_id}", case_id=case_id, person_key=f"k-{case_id}", masked_id=masked, name="孙八",
        phone="13900139003", community=COMMUNITY_A[0], action="home_isolation", previous_action=None, severity=40,
        due_at=now + timedelta(hours=1), reasons=[Reason(rule="medium-risk", text="中风险地区旅居")],
        rules_version=site.worker.runtime.rules_version, flagged_at=now, source_event_ids=[])

    async def send() -> None:
        await site.worker.agents.topics.cases.send(key=case_id.encode(), value=message.model_dump_json().encode())

    site.run(send())


@pytest.mark.parametrize("size", WIDTHS)
def test_a_request_is_logged_answered_and_its_response_time_shown(browser: object, site: RunningWorker, size: str) -> None:
    case_id, masked = f"case-request-{size}", f"330***********{len(size):03d}X"
    _managed_case(site, case_id, masked)
    page = _signed_in(browser, site, site.tokens["community_a"], f"/communities/{COMMUNITY_A[0]}", WIDTHS[size])
    card = _card(masked)
    page.wait_for_selector(card, timeout=5000)
    answers = iter(["2", "胸闷，需要就医", "已联系社区医生上门"])
    page.on("dialog", lambda dialog: dialog.accept(next(answers)))
    assert page.inner_text(f"{card} button.new-request") == "登记诉求"
    page.click(f"{card} button.new-request")
    page.wait_for_selector(f"{card} .request[data-status=open]", timeout=5000)
    asked = page.inner_text(f"{card} .request p.asked")
    assert asked.startswith("就医 · 胸闷，需要就医") and "community:" in asked, asked
    assert page.inner_text(f"{card} .request p.request-state").startswith("待答复 · 答复时限 ")
    page.click(f"{card} button.answer-request")
    page.wait_for_selector(f"{card} .request[data-status=answered] p.times.response", timeout=5000)
    assert "已联系社区医生上门" in page.inner_text(f"{card} .request p.answer")
    response = page.inner_text(f"{card} .request p.times.response")
    assert response.startswith("响应用时 ") and response.endswith(" 分钟") and 0 <= float(response.split()[1]) < 5, response
    assert page.locator(f"{card} button.answer-request").count() == 0
    assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    page.screenshot(path=str(OUT / f"request-{size}.png"), full_page=True)

    from streams.memory import get_broker

    settings = site.worker.settings
    broker = get_broker(settings.broker)
    events = [orjson.loads(r.value) for r in broker.all_records(settings.topic("case-events")) if r.key == case_id.encode()]
    assert [e["kind"] for e in events] == ["request", "answered"]
    assert events[0]["request_kind"] == "medical" and events[1]["note"] == "已联系社区医生上门"
    queue = [orjson.loads(r.value) for r in broker.all_records(settings.topic(f"triage.{COMMUNITY_A[0]}"))]
    assert [m["detail"]["step"] for m in queue if m.get("kind") == "request" and m["case_id"] == case_id] == \
        ["posted", "answered"]
    page.context.close()

    board = _signed_in(browser, site, site.tokens["admin"], "/dashboard", WIDTHS[size])
    board.wait_for_function("document.getElementById('r-median').textContent.trim() !== '—'", timeout=5000)
    assert 0 <= float(board.inner_text("#r-median")) < 5 and board.inner_text("#r-open") == "0"
    assert board.evaluate(NO_SIDEWAYS_SCROLL), board.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    board.locator("#requests").screenshot(path=str(OUT / f"dashboard-requests-{size}.png"))
    board.context.close()
