"""The live requests' place store is appended to as requests arrive; a replaced request's rows stop counting."""

from __future__ import annotations

from geo.proximity import near_in_time
from geo.sweep import keys_of
from pipeline.contacts import TraceRequest
from pipeline.state import Place
from streams.tracing import RequestPlaces


def _request(source: str, lon: float, t: int) -> TraceRequest:
    places = (Place(f"e-{source}", 0, "stop", t, t + 600, lon, 31.2, "stop"),
              Place(f"e-{source}", 1, "origin", t, t, 100.0, 20.0, "origin"))
    return TraceRequest("close", source, "m", source, "m", t - 86_400, places)


def _owners_near(held: RequestPlaces, lon: float, t: int) -> set[str]:
    near = near_in_time(held.store, [lon], [31.2], [t], [t + 60], radius_m=50.0)
    return {held.owners[int(n)] for n in keys_of(near.key) if held.current(int(n))}


def test_a_replaced_request_is_found_only_at_its_new_places_and_origins_are_not_held() -> None:
    held = RequestPlaces()
    held.hold(_request("a", 121.40, 1_000_000))
    held.hold(_request("b", 121.50, 1_000_000))
    assert _owners_near(held, 121.40, 1_000_100) == {"close/a"}
    held.hold(_request("a", 121.60, 1_000_000))
    assert _owners_near(held, 121.40, 1_000_100) == set()
    assert _owners_near(held, 121.60, 1_000_100) == {"close/a"}
    assert _owners_near(held, 100.0, 1_000_000) == set()
    assert (held.live, held.stale, len(held.store)) == (2, 1, 3)
