"""Tokens, hashes, access files and session cookies (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.access import (
    AccessError,
    AccessList,
    access_file_text,
    hash_token,
    issue_session,
    mask_phone,
    new_token,
    parse_access,
    verify_session,
)

NOW = datetime(2022, 6, 20, 8, 0, tzinfo=UTC)


def _list(*grants: tuple[str, str]) -> tuple[AccessList, list[str]]:
    access, tokens = AccessList(()), []
    for role, subject in grants:
        token = new_token()
        tokens.append(token)
        access = access.add(role, subject, token, created_at=NOW)
    return access, tokens


def test_tokens_are_random_and_only_hashes_are_written() -> None:
    access, (a, b) = _list(("community", "C1"), ("admin", ""))
    assert a != b and len(a) > 40
    text = access_file_text(access.grants)
    assert a not in text and b not in text
    assert hash_token(a) in text


def test_a_token_finds_its_grant_after_a_round_trip_through_the_file() -> None:
    access, (a, b, c) = _list(("community", "C1"), ("checkpoint", "cp-01"), ("admin", ""))
    parsed = parse_access(access_file_text(access.grants))
    assert parsed.find(a).who == "community:C1"
    assert parsed.find(b).who == "checkpoint:cp-01"
    assert parsed.find(c).role == "admin"
    assert parsed.find("epf_wrong") is None
    assert parsed.find("") is None


@pytest.mark.parametrize(("role", "subject", "target", "expected"), [
    ("community", "C1", ("community", "C1"), True),
    ("community", "C1", ("community", "C2"), False),
    ("community", "C1", ("admin", None), False),
    ("checkpoint", "cp-01", ("checkpoint", None), True),
    ("admin", "", ("community", "C9"), True),
])
def test_may(role: str, subject: str, target: tuple[str, str | None], expected: bool) -> None:
    access, (token,) = _list((role, subject))
    assert access.find(token).may(*target) is expected


@pytest.mark.parametrize(("role", "subject", "words"), [
    ("mayor", "X", "role was 'mayor'"),
    ("community", "", "needs the community id"),
    ("admin", "C1", "admin grant has no subject"),
    ("lab", 'a"b', "may not contain quotes"),
])
def test_bad_grants_are_refused(role: str, subject: str, words: str) -> None:
    with pytest.raises(AccessError, match=words):
        AccessList(()).add(role, subject, new_token(), created_at=NOW)


@pytest.mark.parametrize(("text", "words"), [
    ("[[grant]\n", "not valid TOML"),
    ('[[grant]]\nrole = "community"\nsubject = "C1"\nhash = "md5:abc"\n', "hash was 'md5:abc'"),
    ('[[grant]]\nrole = "root"\nsubject = ""\nhash = "sha256:' + "0" * 64 + '"\n', "grant #1: role was 'root'"),
])
def test_bad_access_files_name_the_problem(text: str, words: str) -> None:
    with pytest.raises(AccessError, match=words):
        parse_access(text, source="access.toml")


def test_sessions_are_signed_expire_and_end_when_the_grant_is_revoked() -> None:
    access, (token,) = _list(("community", "C1"))
    grant = access.find(token)
    cookie = issue_session(grant, b"key", expires_at=2000)
    assert verify_session(cookie, b"key", access, now=1000) == grant
    assert verify_session(cookie, b"other key", access, now=1000) is None
    assert verify_session(cookie, b"key", access, now=3000) is None
    forged = cookie.replace(".2000.", ".9999.")
    assert verify_session(forged, b"key", access, now=1000) is None
    assert verify_session(cookie, b"key", AccessList(()), now=1000) is None
    assert verify_session("garbage", b"key", access, now=1000) is None


@pytest.mark.parametrize(("phone", "shown"), [("13800138000", "138****8000"), ("+86 138 0013 8000", "+86*******8000"), ("12345", "*****")])
def test_mask_phone(phone: str, shown: str) -> None:
    assert mask_phone(phone) == shown
