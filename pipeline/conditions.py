"""The closed vocabulary of rule conditions (`when:`), checked against the document and compiled to closures.

Each condition is a one-key mapping. A compiled condition takes the `Facts` of one person and returns
None when it does not hold, or a list of `Evidence` (sentences for the reasons) when it does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

import msgspec

from geo.regions import LEVEL_CODE, LEVEL_NAME
from geo.regions import LEVELS as REGION_LEVELS
from pipeline.errors import PipelineError
from pipeline.inputs import NAMES
from pipeline.state import PersonState, Place

__all__ = [
    "CONDITION_KEYS",
    "LEVELS",
    "ROLES",
    "Compiled",
    "ConditionProblem",
    "Evidence",
    "Facts",
    "Hit",
    "Windows",
    "compile_condition",
]

#: risk level names and their codes, as the region index holds them
LEVELS: dict[str, int] = LEVEL_CODE
LEVEL_NAMES: dict[int, str] = LEVEL_NAME
ROLES = ("driver", "passenger", "pedestrian", "traveler")
EVENT_KINDS = NAMES
_DAY = 86_400
_HOUR = 3_600


class ConditionProblem(PipelineError):
    """A condition that does not validate: `path` locates it inside `when`, the message says why."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Windows:
    """The document's windows, in seconds, that conditions fall back on."""

    lookback: int
    nat_valid: int
    pre_designation: int


class Hit(msgspec.Struct, frozen=True, gc=False):
    """A place that fell inside a designated risk region at the time the person was there.

    Like `Evidence`, a frozen msgspec Struct (as `state._Record`): immutable as a frozen dataclass,
    built ten times faster, holding only values, so out of the cycle collector's way.
    """

    level: int
    region_id: str
    region_name: str
    designated_at: int


class Evidence(msgspec.Struct, frozen=True, gc=False):
    """One fact behind a rule firing, as a sentence plus the region, level and time it names."""

    text: str
    region_id: str | None = None
    level: str | None = None
    at: int | None = None


@dataclass(slots=True)
class Facts:
    """One person's state with its geography resolved, at one evaluation time."""

    state: PersonState
    now: int
    tz: tzinfo
    hits: dict[int, Hit] = field(default_factory=dict)  # index into state.places -> region hit
    community: str = "unassigned"
    age: int | None = None


Compiled = Callable[[Facts], list[Evidence] | None]


def _fmt(t: int, tz: tzinfo, with_time: bool = True) -> str:
    """Local 'YYYY-MM-DD HH:MM' (or the date alone); %-formatting the fields is 3-4 times as fast as strftime."""
    moment = datetime.fromtimestamp(t, tz)
    if moment.year < 1000:  # strftime's unpadded years on some platforms, kept as they were
        return moment.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")
    if with_time:
        return "%d-%02d-%02d %02d:%02d" % (moment.year, moment.month, moment.day, moment.hour, moment.minute)  # noqa: UP031
    return "%d-%02d-%02d" % (moment.year, moment.month, moment.day)  # noqa: UP031


@lru_cache(maxsize=1024)
def _day(t: int, tz: tzinfo) -> str:
    """`_fmt(t, tz, False)`, remembered: the same few designation times recur in every region hit."""
    return _fmt(t, tz, False)


def _mapping(value: Any, path: tuple, allowed: dict[str, bool]) -> dict[str, Any]:
    """Check a parameter mapping: only `allowed` keys (True = required)."""
    if not isinstance(value, dict):
        raise ConditionProblem(path, f"expected a mapping with {', '.join(allowed)}, got {_show(value)}")
    for key in value:
        if key not in allowed:
            raise ConditionProblem(path + (key,), f"unknown key {key!r} (expected one of {', '.join(allowed)})")
    for key, required in allowed.items():
        if required and key not in value:
            raise ConditionProblem(path, f"missing key {key!r}")
    return value


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, dict | list) else type(value).__name__


def _number(value: Any, path: tuple, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConditionProblem(path, f"{what} was {_show(value)} but is expected to be a number")
    if value < 0:
        raise ConditionProblem(path, f"{what} was {value!r} but is expected to be zero or positive (negative window)")
    return float(value)


def _levels(value: Any, path: tuple) -> frozenset[int]:
    names = value if isinstance(value, list) else [value]
    if not names:
        raise ConditionProblem(path, "level list is empty")
    codes = set()
    for i, name in enumerate(names):
        if name not in LEVELS:
            where = path + (i,) if isinstance(value, list) else path
            raise ConditionProblem(where, f"unknown level {name!r} (expected one of {', '.join(REGION_LEVELS)})")
        codes.add(LEVELS[name])
    return frozenset(codes)


def _describe_hit(place: Place, hit: Hit, tz: tzinfo) -> str:
    level = LEVEL_NAMES[hit.level]
    if place.kind == "stop":
        when = f"{_fmt(place.t_from, tz)} to {_fmt(place.t_to, tz)}"
        head = f"stayed at {place.label} {when}"
    elif place.kind == "scan":
        head = f"passed checkpoint {place.label} at {_fmt(place.t_to, tz)}"
    else:
        head = f"vehicle left {place.label} at {_fmt(place.t_to, tz)}"
    return f"{head}, inside {hit.region_name} ({hit.region_id}), {level}-risk area designated {_day(hit.designated_at, tz)}"


def _places_in(kinds: tuple[str, ...], codes: frozenset[int], within: int) -> Compiled:
    def check(f: Facts) -> list[Evidence] | None:
        if not f.hits:
            return None
        floor = f.now - within
        out = None
        places = f.state.places
        for i, hit in f.hits.items():
            place = places[i]
            if hit.level in codes and place.kind in kinds and place.t_to >= floor and place.t_from <= f.now:
                if out is None:
                    out = []
                out.append(Evidence(_describe_hit(place, hit, f.tz), hit.region_id, LEVEL_NAMES[hit.level], place.t_to))
        return out

    return check


def _visited(value: Any, path: tuple, w: Windows) -> Compiled:
    v = _mapping(value, path, {"level": True, "within_days": False})
    within = int(_number(v["within_days"], path + ("within_days",), "within_days") * _DAY) if "within_days" in v else w.lookback
    return _places_in(("stop", "scan"), _levels(v["level"], path + ("level",)), within)


def _vehicle_origin(value: Any, path: tuple, w: Windows) -> Compiled:
    v = _mapping(value, path, {"level": True, "within_days": False})
    within = int(_number(v["within_days"], path + ("within_days",), "within_days") * _DAY) if "within_days" in v else w.lookback
    return _places_in(("origin",), _levels(v["level"], path + ("level",)), within)


def _nat_positive(value: Any, path: tuple, w: Windows) -> Compiled:
    if value is True:
        within = w.lookback
    else:
        v = _mapping(value, path, {"within_days": False})
        within = int(_number(v["within_days"], path + ("within_days",), "within_days") * _DAY) if "within_days" in v else w.lookback

    def check(f: Facts) -> list[Evidence] | None:
        floor = f.now - within
        out = None
        for nat in f.state.nats:
            if nat.result == "positive" and floor <= nat.sampled <= f.now:
                if out is None:
                    out = []
                out.append(Evidence(f"positive NAT sampled {_fmt(nat.sampled, f.tz)} ({nat.lab})", at=nat.sampled))
        return out

    return check


def _latest_scan(state: PersonState) -> Place | None:
    best = None
    for place in state.places:
        if place.kind == "scan" and (best is None or place.order > best.order):
            best = place
    return best


def _no_negative_nat(value: Any, path: tuple, w: Windows) -> Compiled:
    v = _mapping(value, path, {"before": True, "within_hours": False})
    before = v["before"]
    if before not in ("arrival", "scan"):
        raise ConditionProblem(path + ("before",), f"before was {_show(before)} but is expected to be 'arrival' or 'scan'")
    hours = _number(v["within_hours"], path + ("within_hours",), "within_hours") if "within_hours" in v else w.nat_valid / _HOUR
    span = int(hours * _HOUR)
    shown = f"{hours:g} h"

    def check(f: Facts) -> list[Evidence] | None:
        state = f.state
        if before == "arrival":
            decl = state.declaration
            if decl is None or decl.submitted < f.now - w.lookback:
                return None
            ref, what = decl.arrival, "arrival"
        else:
            scan = _latest_scan(state)
            if scan is None or scan.t_to < f.now - w.lookback:
                return None
            ref, what = scan.t_to, f"the scan at {scan.label}"
        for nat in state.nats:
            if nat.result == "negative" and ref - span <= nat.sampled <= ref:
                return None
        return [Evidence(f"no negative NAT sampled within {shown} before {what} ({_fmt(ref, f.tz)})", at=ref)]

    return check


def _event_kind(value: Any, path: tuple, w: Windows) -> Compiled:
    if isinstance(value, str):
        kind, within = value, w.lookback
        kind_path = path
    else:
        v = _mapping(value, path, {"kind": True, "within_hours": False})
        kind, kind_path = v["kind"], path + ("kind",)
        within = int(_number(v["within_hours"], path + ("within_hours",), "within_hours") * _HOUR) if "within_hours" in v else w.lookback
    if kind not in EVENT_KINDS:
        raise ConditionProblem(kind_path, f"unknown event kind {_show(kind)} (expected one of {', '.join(EVENT_KINDS)})")

    def check(f: Facts) -> list[Evidence] | None:
        floor = f.now - within
        state = f.state
        if kind == "declaration":
            return [] if state.declaration is not None and state.declaration.submitted >= floor else None
        if kind == "nat_result":
            for n in state.nats:
                if n.reported >= floor and not n.event_id.endswith("#report"):
                    return []
            return None
        for p in state.places:
            if p.kind == "scan" and p.t_to >= floor:
                return []
        return None

    return check


def _role(value: Any, path: tuple, w: Windows) -> Compiled:
    roles = value if isinstance(value, list) else [value]
    if not roles:
        raise ConditionProblem(path, "role list is empty")
    for i, role in enumerate(roles):
        if role not in ROLES:
            where = path + (i,) if isinstance(value, list) else path
            raise ConditionProblem(where, f"unknown role {_show(role)} (expected one of {', '.join(ROLES)})")
    wanted = frozenset(roles)

    def check(f: Facts) -> list[Evidence] | None:
        scan = _latest_scan(f.state)
        if scan is not None and scan.t_to >= f.now - w.lookback and scan.role in wanted:
            return [Evidence(f"{scan.role} at checkpoint {scan.label}")]
        decl = f.state.declaration
        if "traveler" in wanted and decl is not None and decl.submitted >= f.now - w.lookback:
            return [Evidence("declared traveler")]
        return None

    return check


def _age(value: Any, path: tuple, w: Windows) -> Compiled:
    v = _mapping(value, path, {"min": False, "max": False})
    if not v:
        raise ConditionProblem(path, "age needs 'min', 'max' or both")
    low = _number(v["min"], path + ("min",), "min") if "min" in v else None
    high = _number(v["max"], path + ("max",), "max") if "max" in v else None
    if low is not None and high is not None and high < low:
        raise ConditionProblem(path, f"age max {high:g} is below min {low:g}")

    def check(f: Facts) -> list[Evidence] | None:
        if f.age is None or (low is not None and f.age < low) or (high is not None and f.age > high):
            return None
        return [Evidence(f"aged {f.age}")]

    return check


def _community_in(value: Any, path: tuple, w: Windows) -> Compiled:
    if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
        raise ConditionProblem(path, f"expected a non-empty list of community codes, got {_show(value)}")
    codes = frozenset(value)

    def check(f: Facts) -> list[Evidence] | None:
        return [Evidence(f"belongs to community {f.community}")] if f.community in codes else None

    return check


def _children(value: Any, path: tuple, w: Windows, key: str) -> list[Compiled]:
    if not isinstance(value, list) or not value:
        raise ConditionProblem(path, f"'{key}' expects a non-empty list of conditions, got {_show(value)}")
    return [compile_condition(item, path + (i,), w) for i, item in enumerate(value)]


def _all(value: Any, path: tuple, w: Windows) -> Compiled:
    parts = _children(value, path, w, "all")

    def check(f: Facts) -> list[Evidence] | None:
        out: list[Evidence] = []
        for part in parts:
            got = part(f)
            if got is None:
                return None
            out.extend(got)
        return out

    return check


def _any(value: Any, path: tuple, w: Windows) -> Compiled:
    parts = _children(value, path, w, "any")

    def check(f: Facts) -> list[Evidence] | None:
        out: list[Evidence] | None = None
        for part in parts:
            got = part(f)
            if got is not None:
                out = got if out is None else out + got
        return out

    return check


def _not(value: Any, path: tuple, w: Windows) -> Compiled:
    inner = compile_condition(value, path, w)

    def check(f: Facts) -> list[Evidence] | None:
        return [] if inner(f) is None else None

    return check


_BUILDERS: dict[str, Callable[[Any, tuple, Windows], Compiled]] = {
    "all": _all,
    "any": _any,
    "not": _not,
    "nat_positive": _nat_positive,
    "visited": _visited,
    "vehicle_origin": _vehicle_origin,
    "no_negative_nat": _no_negative_nat,
    "event_kind": _event_kind,
    "role": _role,
    "age": _age,
    "community_in": _community_in,
}
CONDITION_KEYS: tuple[str, ...] = tuple(_BUILDERS)


def compile_condition(node: Any, path: tuple[str | int, ...], windows: Windows) -> Compiled:
    """Validate one `when` node and build its closure; raises `ConditionProblem` at the offending path."""
    if not isinstance(node, dict) or len(node) != 1:
        got = f"a mapping with {len(node)} keys ({', '.join(map(str, node))})" if isinstance(node, dict) else _show(node)
        raise ConditionProblem(path, f"a condition is a mapping with exactly one key, got {got}")
    (key, value), = node.items()
    builder = _BUILDERS.get(key)
    if builder is None:
        raise ConditionProblem(path + (key,), f"unknown condition {key!r} (expected one of {', '.join(CONDITION_KEYS)})")
    return builder(value, path + (key,), windows)
