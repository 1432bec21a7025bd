"""One headless Chromium (Debian's package, driven by Playwright) and one worker with access tokens per browser test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.test_pages import ARGS, CHROMIUM, OUT
from tests.streams.api_helpers import RunningWorker, start_worker


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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorker]:
    """A worker on the embedded broker with the test access file, for the pages of one module."""
    running = start_worker(tmp_path_factory.mktemp("access") / "access.toml")
    try:
        yield running
    finally:
        running.stop()
