"""Testing rules before they are published: scenario files and back-tests against recorded events.

Scenarios (`config/rules.tests.yaml`) are small, self-contained cases — their own box-shaped risk
regions and communities, raw input events, a time, and the expected action and rule ids. A back-test
evaluates the same recorded events under an old and a new rules document and counts who changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson
import shapely

from geo.communities import Community, CommunityIndex
from geo.regions import Region, RiskIndex
from pipeline.errors import RejectedEvent, RulesError
from pipeline.evaluate import build_states, replayed
from pipeline.ingest import ingest
from pipeline.inputs import BY_NAME
from pipeline.join import managed
from pipeline.rules import Rules, read_config_text, read_yaml_with_lines
from pipeline.state import apply_many, new_state, observation_of
from pipeline.triage import evaluate_many, remember, route

__all__ = [
    "Backtest",
    "Scenario",
    "ScenarioResult",
    "backtest",
    "load_scenarios",
    "run_scenarios",
    "scenarios_for",
]

_SECRET = b"epiflow-scenario-secret"


@dataclass(frozen=True)
class Scenario:
    name: str
    line: int
    at: datetime
    events: tuple[dict, ...]
    action: str
    rules: tuple[str, ...]
    #: expected management fields (status, action, day, tests as statuses in order, next_due), when given
    management: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class ScenarioFile:
    source: str
    scenarios: tuple[Scenario, ...]
    regions: tuple[Region, ...]
    communities: tuple[Community, ...]


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    ok: bool
    action: str
    rules: tuple[str, ...]
    detail: str = ""


def _time(value: Any, where: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise RulesError(f"{where}: {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise RulesError(f"{where}: expected a time with a UTC offset, got {value!r}")
    return value


def _box(item: dict, where: str) -> shapely.Polygon:
    bbox = item.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
        raise RulesError(f"{where}: 'bbox' must be [min_lon, min_lat, max_lon, max_lat], got {bbox!r}")
    return shapely.box(*bbox)


def _expect_keys(item: Any, allowed: set[str], required: set[str], where: str) -> dict:
    if not isinstance(item, dict):
        raise RulesError(f"{where}: expected a mapping, got {type(item).__name__}")
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise RulesError(f"{where}: unknown key {unknown[0]!r} (expected {', '.join(sorted(allowed))})")
    missing = sorted(required - set(item))
    if missing:
        raise RulesError(f"{where}: missing key {missing[0]!r}")
    return item


def scenarios_for(rules_path: str | Path, rules: Rules) -> Path:
    """The scenario file of a rules file: the one its `scenarios:` key names (relative to the rules file),
    else `<name>.tests.yaml` beside it (`rules.yaml` → `rules.tests.yaml`)."""
    path = Path(rules_path)
    named = rules.document.scenarios
    if named is None:
        return path.with_name(f"{path.stem}.tests.yaml")
    return Path(named) if Path(named).is_absolute() else path.parent / named


def load_scenarios(path: str | Path) -> ScenarioFile:
    """Read a scenario file; problems name the file and line."""
    p = Path(path)
    text = read_config_text(p, "scenario file", RulesError)
    doc, located = read_yaml_with_lines(text, str(p))

    def where(*path: str | int) -> str:
        return f"{p}:{located.line(tuple(path))}"

    _expect_keys(doc, {"at", "person", "regions", "communities", "scenarios"}, {"scenarios"}, where())
    default_at = _time(doc["at"], where("at")) if "at" in doc else None
    person = doc.get("person")
    regions = []
    for i, item in enumerate(doc.get("regions") or []):
        w = where("regions", i)
        _expect_keys(item, {"id", "level", "name", "effective_from", "effective_until", "bbox"}, {"id", "level", "effective_from", "bbox"}, w)
        until = item.get("effective_until")
        try:
            regions.append(Region(
                id=str(item["id"]),
                level=item["level"],
                name=str(item.get("name", item["id"])),
                effective_from=_time(item["effective_from"], w),
                effective_until=None if until is None else _time(until, w),
                geometry=_box(item, w),
            ))
        except ValueError as exc:
            raise RulesError(f"{w}: {exc}") from None
    communities = []
    for i, item in enumerate(doc.get("communities") or []):
        w = where("communities", i)
        _expect_keys(item, {"code", "name", "street", "bbox"}, {"code", "bbox"}, w)
        communities.append(Community(str(item["code"]), str(item.get("name", item["code"])), str(item.get("street", "")), _box(item, w)))
    scenarios = []
    names: set[str] = set()
    for i, item in enumerate(doc["scenarios"] or []):
        w = where("scenarios", i)
        _expect_keys(item, {"name", "at", "events", "expect"}, {"name", "events", "expect"}, w)
        if item["name"] in names:
            raise RulesError(f"{w}: duplicate scenario name {item['name']!r}")
        names.add(item["name"])
        if "at" not in item and default_at is None:
            raise RulesError(f"{w}: no 'at' here and no default 'at' at the top of the file")
        at = _time(item["at"], where("scenarios", i, "at")) if "at" in item else default_at
        expect = _expect_keys(item["expect"], {"action", "rules", "management"}, {"action"}, where("scenarios", i, "expect"))
        managed = expect.get("management") or {}
        _expect_keys(managed, {"status", "action", "day", "tests", "next_due"}, set(), where("scenarios", i, "expect", "management"))
        events = []
        for k, ev in enumerate(item["events"] or []):
            if not isinstance(ev, dict):
                raise RulesError(f"{where('scenarios', i, 'events', k)}: an event is a mapping")
            events.append(_with_person(ev, person))
        scenarios.append(Scenario(str(item["name"]), located.line(("scenarios", i)), at, tuple(events), str(expect["action"]), tuple(expect.get("rules") or ()),
                                  tuple((k, _jsonable(v)) for k, v in managed.items())))
    return ScenarioFile(str(p), tuple(scenarios), tuple(regions), tuple(communities))


def _with_person(event: dict, person: dict | None) -> dict:
    """Fill in the file's default person where an event leaves it out (a driver on a scan)."""
    if person is None:
        return event
    event = dict(event)
    kind = event.get("type")
    fields = BY_NAME[kind].model.model_fields if isinstance(kind, str) and kind in BY_NAME else {}
    if "people" in fields and "people" not in event:
        event["people"] = [{**person, "role": event.pop("role", "driver")}]
    elif "person" in fields and "person" not in event:
        event["person"] = dict(person)
    return event


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def run_scenarios(rules: Rules, scenarios: ScenarioFile) -> list[ScenarioResult]:
    """Run every scenario through ingest, state, evaluation; compare action and the set of rule ids."""
    regions = RiskIndex(scenarios.regions)
    communities = CommunityIndex(scenarios.communities)
    lookback = timedelta(seconds=rules.windows.lookback)
    results = []
    for sc in scenarios.scenarios:
        events = []
        problem = ""
        for raw in sc.events:
            try:
                events.extend(ingest(orjson.dumps(_jsonable(raw)), secret=_SECRET, now=sc.at, lookback=lookback))
            except RejectedEvent as exc:
                problem = f"event {raw.get('event_id', '?')} rejected: {exc}"
                break
        if problem or not events:
            results.append(ScenarioResult(sc, False, "-", (), problem or "no events"))
            continue
        keys = {e.person_key for e in events}
        if len(keys) != 1:
            results.append(ScenarioResult(sc, False, "-", (), "a scenario must be about one person"))
            continue
        state = apply_many(new_state(events[0].person_key), events, horizon=rules.horizon)
        verdict = evaluate_many([state], rules, regions, communities, sc.at)[0]
        ok = verdict.action == sc.action and (not sc.rules or set(verdict.rules) == set(sc.rules))
        detail = "" if ok else f"expected {sc.action} {sorted(sc.rules)}, got {verdict.action} {sorted(verdict.rules)}"
        if ok and sc.management:
            detail = _management_problem(sc, events, state, verdict, rules, regions, communities)
            ok = not detail
        results.append(ScenarioResult(sc, ok, verdict.action, verdict.rules, detail))
    return results


def _management_problem(sc: Scenario, events: list, state: Any, verdict: Any, rules: Rules, regions: RiskIndex,
                        communities: CommunityIndex) -> str:
    """'' when the management at the scenario's time (each event seen at its own time) is as expected."""
    observations = {state.person_key: [observation_of(e) for e in events]}
    prior = replayed(observations, rules, regions, communities, sc.at)[state.person_key]
    state = msgspec.structs.replace(state, last=prior.last, managed=prior.managed)
    got = managed(remember(state, route(state.last, verdict)), verdict, rules, int(sc.at.timestamp()))[1].to_json(rules.tz)
    got["tests"] = [t["status"] for t in got["tests"]]
    wrong = [f"management.{k} expected {v!r}, got {got.get(k)!r}" for k, v in sc.management if got.get(k) != v]
    return "; ".join(wrong)


@dataclass
class Backtest:
    """How many people change action between two rules documents, by pair and by community."""

    people: int
    changed: int
    by_pair: Counter = field(default_factory=Counter)
    by_community: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)
    rejected: int = 0

    def to_json(self) -> dict:
        return {
            "people": self.people,
            "changed": self.changed,
            "rejected": self.rejected,
            "by_pair": {f"{a} -> {b}": n for (a, b), n in self.by_pair.most_common()},
            "by_community": dict(self.by_community.most_common()),
            "examples": self.examples,
        }


def backtest(
    lines: Iterable[bytes],
    old: Rules,
    new: Rules,
    regions: RiskIndex,
    communities: CommunityIndex,
    at: datetime,
    *,
    secret: bytes,
    examples: int = 5,
) -> Backtest:
    """Evaluate the same events under `old` and `new` rules; count and show who changes action."""
    lookback = timedelta(seconds=max(old.windows.lookback, new.windows.lookback))
    horizon = max(old.horizon, new.horizon)
    rejected = Counter()
    states = list(build_states(lines, lookback=lookback, horizon=horizon, secret=secret, at=at,
                               on_reject=lambda d: rejected.update([d.reason])).values())
    before = evaluate_many(states, old, regions, communities, at)
    after = evaluate_many(states, new, regions, communities, at)
    report = Backtest(people=len(states), changed=0, rejected=sum(rejected.values()))
    for a, b in zip(before, after, strict=True):
        if a.action == b.action:
            continue
        report.changed += 1
        report.by_pair[(a.action, b.action)] += 1
        report.by_community[b.community] += 1
        if len(report.examples) < examples:
            report.examples.append({
                "masked_id": b.masked_id,
                "community": b.community,
                "old": a.action,
                "new": b.action,
                "old_rules": list(a.rules),
                "new_rules": list(b.rules),
                "reasons": [r.text for r in b.reasons],
            })
    return report
