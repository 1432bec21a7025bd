"""The access gate: enforced with a file, open (memory:// demo) or closed (kafka://) without one, reloads on change."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.access import AccessList, access_file_text, new_token
from pipeline.settings import load_settings
from streams.access import SESSION_COOKIE, AccessGate
from streams.errors import Denied


@dataclass
class FakeRequest:
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)


def _gate(path: Path, broker: str = "memory://") -> AccessGate:
    settings = load_settings(broker=broker, access=str(path), secret="a-real-secret-for-tests", env={})
    gate = AccessGate(settings)
    gate.refresh(force=True)
    return gate


def _write(path: Path, *grants: tuple[str, str]) -> list[str]:
    access, tokens = AccessList(()), []
    for role, subject in grants:
        tokens.append(new_token())
        access = access.add(role, subject, tokens[-1], created_at=datetime.now(UTC))
    path.write_text(access_file_text(access.grants), encoding="utf-8")
    return tokens


def test_without_a_file_memory_is_open_and_kafka_is_closed(tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    assert _gate(missing).require(FakeRequest(), "admin").role == "admin"
    closed = _gate(missing, broker="kafka://127.0.0.1:9092")
    with pytest.raises(Denied) as refused:
        closed.require(FakeRequest(headers={"Authorization": "Bearer x"}), "checkpoint", "cp-01")
    assert refused.value.status == 503
    assert "no access file" in refused.value.problem


def test_bearer_tokens_and_session_cookies(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    (token,) = _write(path, ("community", "C1"))
    gate = _gate(path)
    assert gate.require(FakeRequest(headers={"Authorization": f"Bearer {token}"}), "community", "C1").subject == "C1"
    with pytest.raises(Denied) as refused:
        gate.require(FakeRequest(headers={"Authorization": f"Bearer {token}"}), "community", "C2")
    assert refused.value.status == 403
    with pytest.raises(Denied) as refused:
        gate.require(FakeRequest(headers={"Authorization": f"Basic {token}"}), "community", "C1")
    assert refused.value.status == 401
    grant, cookie = gate.login(token)
    assert gate.require(FakeRequest(cookies={SESSION_COOKIE: cookie}), "community", "C1") == grant
    assert gate.login("epf_wrong") is None


def test_the_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    (old,) = _write(path, ("lab", "L1"))
    gate = _gate(path)
    (new,) = _write(path, ("lab", "L2"))
    os.utime(path, (1, 1))
    gate.refresh(force=True)
    with pytest.raises(Denied):
        gate.require(FakeRequest(headers={"Authorization": f"Bearer {old}"}), "lab")
    assert gate.require(FakeRequest(headers={"Authorization": f"Bearer {new}"}), "lab").subject == "L2"


def test_a_broken_file_keeps_the_last_good_grants(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    (token,) = _write(path, ("admin", ""))
    gate = _gate(path)
    path.write_text("[[grant]\n", encoding="utf-8")
    gate.refresh(force=True)
    assert gate.require(FakeRequest(headers={"Authorization": f"Bearer {token}"}), "admin").role == "admin"
