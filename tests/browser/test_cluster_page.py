"""A community page served by the worker that holds none of that community's cases, in a real headless
Chromium, on two `epiflow worker` processes and the real broker: the page shows the community's whole queue
and Accept there reaches the case on the other worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.test_pages import ARGS, CHROMIUM, OUT
from tests.streams.cluster_helpers import Cluster, start_cluster, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(kafka_bootstrap, tmp_path_factory.mktemp("cluster-page"), people=400)
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.timeout(600)
def test_a_community_page_on_the_worker_without_its_cases_lists_and_accepts_them(cluster: Cluster) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    holders = cluster.holders()
    chosen = None
    for code, ids in sorted(cluster.expected.items(), key=lambda kv: -len(kv[1])):
        owners = {cluster.owner(cid, holders).web_port for cid in ids}
        if code != "unassigned" and len(owners) == 1:
            chosen = code, sorted(ids), next(w for w in cluster.workers if w.web_port not in owners)
            break
    assert chosen is not None, "every community has cases on both workers; no page to show from the empty side"
    code, ids, elsewhere = chosen
    base = cluster.base(elsewhere)
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="UTC").new_page()
            page.goto(f"{base}/communities/{code}")
            page.fill("input[name=token]", cluster.tokens[f"community:{code}"])
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/communities/{code}")
            page.wait_for_function(f"document.querySelectorAll('#queue article.card').length >= {len(ids)}",
                                   timeout=10_000)
            shown = set(page.eval_on_selector_all("#queue article.card", "cs => cs.map(c => c.dataset.caseId)"))
            assert shown == set(ids)
            case_id = next(c for c in ids if c not in cluster.unsettled)
            card = f"article.card[data-case-id='{case_id}']"
            page.click(f"{card} button.accept")
            page.wait_for_selector(f"{card}[data-status=accepted]", timeout=5_000)
            page.screenshot(path=str(Path(OUT) / "cluster-accept-elsewhere.png"), full_page=True)
        finally:
            browser.close()
    owner = cluster.owner(case_id, holders)

    def accepted_on_owner() -> bool:
        status, body = cluster.queue(owner, code)
        return status == 200 and any(r["case_id"] == case_id and r["status"] == "accepted" for r in body["cases"])

    wait_until(accepted_on_owner, 2.0)
