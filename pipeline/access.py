"""Access control data: hashed API tokens per role and subject, verified in constant time, and session cookies.

Tokens are 256-bit random strings, so one SHA-256 is a sufficient hash (nothing to brute-force) and
cheap enough for every API call. Only hashes are stored; a token is shown once, when it is made.
Sessions are stateless: an HMAC-signed cookie naming the grant, checked against the access file.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pipeline.errors import PipelineError

__all__ = [
    "ROLES",
    "AccessError",
    "AccessList",
    "Grant",
    "Role",
    "access_file_text",
    "hash_token",
    "issue_session",
    "load_access",
    "mask_phone",
    "new_token",
    "parse_access",
    "verify_session",
]

#: `site`: the staff of a designated hospital or isolation site, who record the person's reception;
#: `enterprise`: a key enterprise posting its key-group rosters
Role = Literal["checkpoint", "lab", "community", "site", "enterprise", "admin"]
ROLES: tuple[str, ...] = ("checkpoint", "lab", "community", "site", "enterprise", "admin")
_HASH_PREFIX = "sha256:"
_TOKEN_PREFIX = "epf_"


class AccessError(PipelineError):
    """An access file, grant or token argument that cannot be used; the message names the problem."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One token's rights: its role, the checkpoint / lab / community it is for ("" for admin)."""

    role: str
    subject: str
    token_hash: str
    created_at: str = ""
    label: str = ""

    @property
    def grant_id(self) -> str:
        """A short, non-secret name for the grant (first hex digits of the hash), for logs and sessions."""
        return self.token_hash.removeprefix(_HASH_PREFIX)[:16]

    @property
    def who(self) -> str:
        """How case events and logs name the holder, e.g. `community:C001`."""
        return self.role if not self.subject else f"{self.role}:{self.subject}"

    def may(self, role: str, subject: str | None = None) -> bool:
        """Admin may do everything; others only their role, and only for their own subject when one is given."""
        if self.role == "admin":
            return True
        return self.role == role and (subject is None or hmac.compare_digest(self.subject, subject))


def new_token() -> str:
    """A fresh random token (shown once to the operator, never stored)."""
    return _TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """`sha256:<hex>` of a token; what the access file stores."""
    if not isinstance(token, str) or not token:
        raise AccessError(f"token was {token!r} but is expected to be a non-empty string")
    return _HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_grant(role: str, subject: str) -> None:
    if role not in ROLES:
        raise AccessError(f"role was {role!r} but is expected to be one of {', '.join(ROLES)}")
    if role == "admin" and subject:
        raise AccessError(f"an admin grant has no subject, got {subject!r}")
    if role != "admin" and not subject.strip():
        raise AccessError(f"a {role} grant needs the {role} id or code it is for, got {subject!r}")
    if any(ch in subject for ch in '"\\\n\r:'):
        raise AccessError(f"subject was {subject!r} but may not contain quotes, backslashes, colons or newlines")


@dataclass(frozen=True, slots=True)
class AccessList:
    """All grants of an access file; `find` compares a presented token against every hash in constant time."""

    grants: tuple[Grant, ...]

    def find(self, token: str | None) -> Grant | None:
        """The grant a token belongs to, or None; every stored hash is compared, whatever matches."""
        if not token:
            return None
        presented = hash_token(token).encode("ascii")
        found = None
        for grant in self.grants:
            if hmac.compare_digest(presented, grant.token_hash.encode("ascii")):
                found = grant
        return found

    def by_id(self, grant_id: str) -> Grant | None:
        for grant in self.grants:
            if hmac.compare_digest(grant.grant_id, grant_id):
                return grant
        return None

    def add(self, role: str, subject: str, token: str, *, created_at: datetime, label: str = "") -> AccessList:
        """A new list with a grant for `token` added (only its hash is kept)."""
        _check_grant(role, subject)
        if created_at.tzinfo is None:
            raise AccessError(f"created_at was {created_at!r} but is expected to be timezone-aware")
        grant = Grant(role, subject, hash_token(token), created_at.isoformat(), label)
        return AccessList(self.grants + (grant,))


def parse_access(text: str, source: str = "access file") -> AccessList:
    """Grants from the TOML text of an access file (`[[grant]]` tables with role, subject, hash)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AccessError(f"{source}: not valid TOML: {exc}") from None
    grants = []
    for i, item in enumerate(document.get("grant", [])):
        where = f"{source}: grant #{i + 1}"
        if not isinstance(item, dict):
            raise AccessError(f"{where}: expected a table, got {type(item).__name__}")
        role, subject, token_hash = item.get("role"), str(item.get("subject", "")), item.get("hash")
        try:
            _check_grant(str(role), subject)
        except AccessError as exc:
            raise AccessError(f"{where}: {exc}") from None
        if not isinstance(token_hash, str) or not token_hash.startswith(_HASH_PREFIX) or len(token_hash) != len(_HASH_PREFIX) + 64:
            raise AccessError(f"{where}: hash was {token_hash!r} but is expected to be 'sha256:' and 64 hex digits")
        grants.append(Grant(str(role), subject, token_hash, str(item.get("created_at", "")), str(item.get("label", ""))))
    return AccessList(tuple(grants))


def load_access(path: Path) -> AccessList:
    """Grants of an access file; a missing file is an error the caller decides about."""
    if not path.exists():
        raise AccessError(f"{path}: access file not found (create tokens with `epiflow access add`)")
    return parse_access(path.read_text(encoding="utf-8"), source=str(path))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def access_file_text(grants: Iterable[Grant]) -> str:
    """The TOML text for a list of grants (hashes only)."""
    out = [
        "# epiflow access file: hashed API tokens (sha256). Managed with `epiflow access add`.",
        "# Tokens are shown once when created and never stored; delete a [[grant]] block to revoke it.",
    ]
    for g in grants:
        out += ["", "[[grant]]", f"role = {_quote(g.role)}", f"subject = {_quote(g.subject)}", f"hash = {_quote(g.token_hash)}"]
        if g.created_at:
            out.append(f"created_at = {_quote(g.created_at)}")
        if g.label:
            out.append(f"label = {_quote(g.label)}")
    return "\n".join(out) + "\n"


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def issue_session(grant: Grant, key: bytes, expires_at: int) -> str:
    """A session cookie value naming the grant and its expiry (epoch s), signed with `key`."""
    payload = f"v1.{grant.grant_id}.{int(expires_at)}"
    return f"{payload}.{_sign(key, payload)}"


def verify_session(value: str | None, key: bytes, access: AccessList, now: int) -> Grant | None:
    """The grant behind a session cookie, or None when it is forged, expired or its token was revoked."""
    if not value:
        return None
    parts: Sequence[str] = value.split(".")
    if len(parts) != 4 or parts[0] != "v1" or not parts[2].isdigit():
        return None
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(_sign(key, payload), parts[3]):
        return None
    if int(parts[2]) < now:
        return None
    return access.by_id(parts[1])


def mask_phone(phone: str) -> str:
    """Keep the first 3 and last 4 digits: `138****8000`."""
    digits = phone.replace(" ", "").replace("-", "")
    if len(digits) <= 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"
