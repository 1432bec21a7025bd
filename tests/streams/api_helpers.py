"""Documents and a running worker for the API and browser tests."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from pipeline.access import AccessList, access_file_text, new_token
from pipeline.identity import check_character
from tools.ports import free_port

#: Community codes of the committed sample district, with a point inside each.
COMMUNITY_A = ("330106001", 120.30051409089091, 30.435743)
COMMUNITY_B = ("330106002", 120.31517905194949, 30.431418)


def resident_id(serial: int) -> str:
    """A valid resident ID number (checksum included) that differs by `serial`."""
    first17 = f"33010619850412{serial % 1000:03d}"
    return first17 + check_character(first17)


def scan(checkpoint: str = "cp-01", *, where: tuple[str, float, float] = COMMUNITY_A, serial: int | None = None,
         people: int = 1) -> dict[str, Any]:
    """A checkpoint scan at a point inside a community, of drivers with no NAT on file (so: hold)."""
    now = datetime.now(UTC)
    serial = uuid.uuid4().int % 1000 if serial is None else serial
    return {
        "type": "checkpoint_scan", "event_id": f"scan-{uuid.uuid4().hex[:12]}", "checkpoint_id": checkpoint,
        "scanned_at": now.isoformat(), "location": {"lon": where[1], "lat": where[2]},
        "people": [
            {"id_number": resident_id(serial + i), "name": f"Person {serial + i}", "phone": "13800138000",
             "role": "driver" if i == 0 else "passenger"}
            for i in range(people)
        ],
    }


def nat_result(lab: str = "lab-1", serial: int = 7) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "type": "nat_result", "event_id": f"nat-{uuid.uuid4().hex[:12]}",
        "person": {"id_number": resident_id(serial), "name": "N", "phone": "13800138000"},
        "sampled_at": (now - timedelta(hours=3)).isoformat(), "reported_at": (now - timedelta(minutes=5)).isoformat(),
        "result": "negative", "lab_id": lab,
    }


def declaration(serial: int = 9) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "type": "declaration", "event_id": f"decl-{uuid.uuid4().hex[:12]}", "submitted_at": now.isoformat(),
        "person": {"id_number": resident_id(serial), "name": "D", "phone": "13800138000"},
        "arrival_at": (now + timedelta(hours=5)).isoformat(),
        "destination": {"lon": COMMUNITY_A[1], "lat": COMMUNITY_A[2], "address": "1 Road"},
        "itinerary": [{"lon": 121.47, "lat": 31.23, "place": "Shanghai", "from": (now - timedelta(days=2)).isoformat(),
                       "to": (now - timedelta(days=1)).isoformat()}],
    }


@dataclass
class RunningWorker:
    """A worker serving HTTP on `base`, run on its own event loop in a thread; `tokens` by name."""

    base: str
    tokens: dict[str, str]
    worker: Any
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def call(self, method: str, path: str, body: bytes | dict | None = None, token: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """One HTTP request; returns (status, decoded JSON body or text)."""
        data = orjson.dumps(body) if isinstance(body, dict) else body
        sent = dict(headers or {})
        if data is not None and not any(k.lower() == "content-type" for k in sent):
            sent["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with _NO_REDIRECT.open(request, timeout=30) as response:
                status, raw, kind = response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, raw, kind = exc.code, exc.read(), exc.headers.get("Content-Type", "")
        return status, orjson.loads(raw) if "json" in kind and raw else raw.decode("utf-8", "replace")

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.run(self.worker.app.stop(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECT = urllib.request.build_opener(_NoRedirect)


def write_access(path: Path) -> dict[str, str]:
    """An access file with one token per role the tests use; returns the tokens by name."""
    tokens = {name: new_token() for name in ("checkpoint", "lab", "community_a", "community_b", "site", "admin")}
    access = AccessList(())
    now = datetime.now(UTC)
    for name, role, subject in (("checkpoint", "checkpoint", "cp-01"), ("lab", "lab", "lab-1"),
                                ("community_a", "community", COMMUNITY_A[0]),
                                ("community_b", "community", COMMUNITY_B[0]), ("site", "site", "site-1"),
                                ("admin", "admin", "")):
        access = access.add(role, subject, tokens[name], created_at=now)
    path.write_text(access_file_text(access.grants), encoding="utf-8")
    return tokens


def start_worker(access_path: Path | None, ready_within: float = 60.0, **overrides: Any) -> RunningWorker:
    """Start a worker (memory:// unless `overrides` name a broker) with its web server on a free port,
    in a background thread."""
    from pipeline.settings import load_settings
    from streams.worker import create_worker

    tokens = write_access(access_path) if access_path is not None else {}
    port = free_port()
    options = {"broker": f"memory://api-{uuid.uuid4().hex[:10]}", "partitions": 2, **overrides}
    settings = load_settings(web_port=port, access=str(access_path or Path("/nonexistent/access.toml")), **options)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def build() -> Any:
        w = create_worker(settings)
        await w.app.start()
        await asyncio.wait_for(w.agents.control_ready.wait(), ready_within)
        return w

    worker = asyncio.run_coroutine_threadsafe(build(), loop).result(ready_within + 30)
    return RunningWorker(f"http://127.0.0.1:{port}", tokens, worker, loop, thread)
