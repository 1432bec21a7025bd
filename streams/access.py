"""Who is calling: bearer tokens for the API, a signed session cookie for the pages, checked on every request.

The access file (`settings.access`, `EPIFLOW_ACCESS`) is re-read when it changes, so `epiflow access add`
takes effect on running workers. Without an access file the embedded memory:// demo runs open (with a
loud warning: every caller is admin); a kafka:// worker refuses every API call and page until one exists.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.access import AccessError, AccessList, Grant, issue_session, load_access, verify_session
from pipeline.settings import Settings
from streams.errors import Denied

__all__ = ["OPEN_GRANT", "SESSION_COOKIE", "SESSION_SECONDS", "AccessGate"]

log = logging.getLogger(__name__)

SESSION_COOKIE = "epiflow_session"
SESSION_SECONDS = 12 * 3600
#: The caller when the demo runs without an access file.
OPEN_GRANT = Grant("admin", "", "sha256:" + "0" * 64, label="open demo (no access file)")
_RECHECK_SECONDS = 1.0


@dataclass
class AccessGate:
    """Loads the access file, follows its changes and answers `who is this request`."""

    settings: Settings
    mode: Literal["enforced", "open", "closed"] = "closed"
    access: AccessList = field(default_factory=lambda: AccessList(()))
    _stamp: tuple[float, int] | None = None
    _checked: float = 0.0
    _warned: bool = False

    @property
    def path(self) -> Path:
        return self.settings.path(self.settings.access)

    @property
    def session_key(self) -> bytes:
        return self.settings.secret_bytes + b"|epiflow-session"

    def refresh(self, force: bool = False) -> None:
        """Reload the access file when it changed (checked at most once a second)."""
        now = time.monotonic()
        if not force and now - self._checked < _RECHECK_SECONDS:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp = None
            self.access = AccessList(())
            self.mode = "open" if self.settings.broker.startswith("memory://") else "closed"
            if not self._warned:
                self._warned = True
                if self.mode == "open":
                    log.warning("NO ACCESS FILE at %s: the API and pages are OPEN to anyone who can reach this port "
                                "(memory:// demo only). Create tokens with `epiflow access add`.", self.path)
                else:
                    log.error("no access file at %s: every API call and page is refused on kafka:// until one exists "
                              "(`epiflow access add --admin`)", self.path)
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._stamp and self.mode == "enforced":
            return
        try:
            self.access = load_access(self.path)
        except AccessError as exc:
            log.error("access file refused, keeping the previous grants: %s", exc)
            return
        self._stamp, self.mode, self._warned = stamp, "enforced", False
        log.info("access file loaded path=%s grants=%d", self.path, len(self.access.grants))

    def identify(self, request: Any) -> Grant | None:
        """The grant of a bearer token or session cookie; None when neither is present or valid."""
        self.refresh()
        if self.mode == "open":
            return OPEN_GRANT
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            return self.access.find(token.strip()) if scheme.lower() == "bearer" else None
        return verify_session(request.cookies.get(SESSION_COOKIE), self.session_key, self.access, int(time.time()))

    def require(self, request: Any, role: str, subject: str | None = None) -> Grant:
        """The caller's grant if it may act as `role` (for `subject`); else raise `Denied` saying why."""
        grant = self.identify(request)
        if self.mode == "closed":
            raise Denied(503, f"no access file at {self.path}: this worker serves nobody until tokens exist "
                              "(create them with `epiflow access add`)")
        if grant is None:
            has_header = bool(request.headers.get("Authorization"))
            raise Denied(401, "the bearer token is not valid" if has_header else
                         "authentication required: send 'Authorization: Bearer <token>' or sign in at /login")
        if not grant.may(role, subject):
            target = role if subject is None else f"{role} {subject!r}"
            raise Denied(403, f"this token ({grant.who}) may not act for {target}")
        return grant

    def login(self, token: str) -> tuple[Grant, str] | None:
        """Grant and session cookie value for a token typed at /login; None for a bad token."""
        self.refresh(force=True)
        grant = OPEN_GRANT if self.mode == "open" else self.access.find(token.strip())
        if grant is None or self.mode == "closed":
            return None
        return grant, issue_session(grant, self.session_key, int(time.time()) + SESSION_SECONDS)
