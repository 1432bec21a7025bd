"""The by-community case index and share gathering rules (no broker)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streams.queries import (
    CaseIndex,
    DecodedCases,
    Incomplete,
    Share,
    decode_share,
    encode_share,
    gather_shares,
)


def test_the_index_follows_a_case_that_moves_and_serves_only_held_partitions() -> None:
    index = CaseIndex()
    index.put(b"c1", "A", 0)
    index.put(b"c2", "A", 1)
    index.put(b"c3", "B", 1)
    assert sorted(index.keys_of("A", {0, 1})) == [(b"c1", 0), (b"c2", 1)]
    assert index.keys_of("A", {1}) == [(b"c2", 1)]
    index.put(b"c1", "B", 0)  # the person moved: the case follows
    assert index.keys_of("A", {0, 1}) == [(b"c2", 1)]
    assert sorted(index.keys_of("B", {0, 1})) == [(b"c1", 0), (b"c3", 1)]
    index.put(b"c2", "B", 1)
    assert "A" not in index.by_community and len(index) == 3
    index.rebuild([(b"x", "C", 2)])
    assert index.keys_of("B", {0, 1, 2}) == [] and index.all_keys({2}) == [(b"x", 2)]


def test_a_share_travels_with_its_raw_records() -> None:
    share = decode_share(encode_share([3, 1], [b"\x00\xff", b"abc"]))
    assert share.partitions == frozenset({1, 3}) and share.payload == [b"\x00\xff", b"abc"]


def _app(hosts: dict) -> SimpleNamespace:
    router = SimpleNamespace(table_metadata=lambda name: hosts)
    return SimpleNamespace(router=router, conf=SimpleNamespace(canonical_url="http://self:6066"), http_client=None)


def test_shares_that_do_not_cover_every_partition_are_incomplete() -> None:
    table = SimpleNamespace(name="cases", partitions=4)
    request = SimpleNamespace(headers={}, query={})
    app = _app({"http://self:6066": {}})
    shares = asyncio.run(gather_shares(app, table, "/x", request, lambda: Share(frozenset(range(4)), [])))
    assert len(shares) == 1
    with pytest.raises(Incomplete) as caught:
        asyncio.run(gather_shares(app, table, "/x", request, lambda: Share(frozenset({0, 2}), [])))
    assert caught.value.missing == [1, 3]


def test_decoded_cases_decode_each_record_once_and_forget_the_oldest() -> None:
    calls: list[bytes] = []
    decoded = DecodedCases(lambda raw: calls.append(raw) or raw.upper(), limit=2)
    assert decoded(b"a") == b"A" and decoded(b"a") == b"A" and calls == [b"a"]
    decoded(b"b")
    decoded(b"c")
    assert len(decoded) == 2
    decoded(b"a")
    assert calls == [b"a", b"b", b"c", b"a"]
    with pytest.raises(ValueError, match="positive"):
        DecodedCases(bytes, limit=0)
