"""Verdicts and routing: person state + geography + rules -> action, reasons, community; changes -> messages.

`evaluate` resolves the person's places against the risk index (as of the time they were there) and
runs every compiled rule; the most severe action wins and every rule that fired is reported.
`evaluate_many` does the same for many people, with vectorised geo lookups a batch of people at a
time. `route` turns a verdict into a `TriageMessage` only when the action changed; `remember`
records what was sent in the state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Literal

import msgspec
import numpy as np

from geo.communities import CommunityIndex
from geo.regions import RiskIndex
from pipeline.conditions import Evidence, Facts, Hit
from pipeline.errors import PipelineError
from pipeline.events import Reason, TriageMessage
from pipeline.identity import age_on
from pipeline.rules import CLEAR, Action, Rules
from pipeline.state import LastVerdict, PersonState
from pipeline.state import remember as _remember

__all__ = [
    "UNASSIGNED",
    "CheckpointDecision",
    "PersonDecision",
    "Verdict",
    "case_id_for",
    "checkpoint_decision",
    "decide",
    "evaluate",
    "evaluate_many",
    "message_id_for",
    "remember",
    "route",
]

#: Community of a person with no destination or checkpoint inside the district.
UNASSIGNED = "unassigned"


class Verdict(msgspec.Struct, frozen=True, gc=False):
    """The outcome of the rules for one person at one time.

    A frozen msgspec Struct (as `state._Record`): immutable and compared by value like a frozen
    dataclass, built ten times faster; it holds values and reasons only, so no cycle can run through it.
    """

    person_key: str
    masked_id: str
    name: str
    phone: str
    action: str
    severity: int
    duration_days: int | None
    due_at: datetime | None
    rules: tuple[str, ...]
    reasons: tuple[Reason, ...]
    rules_version: str
    community: str
    evaluated_at: datetime
    trigger_event_id: str
    address: str = ""

    def to_json(self) -> dict:
        """The `epiflow evaluate` output line for this person."""
        return {
            "person_key": self.person_key,
            "masked_id": self.masked_id,
            "name": self.name,
            "action": self.action,
            "severity": self.severity,
            "community": self.community,
            "rules": list(self.rules),
            "reasons": [r.model_dump(mode="json", exclude_none=True) for r in self.reasons],
            "due_at": None if self.due_at is None else self.due_at.isoformat(),
        }


def _check_now(now: datetime) -> int:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise PipelineError(f"now was {now!r} but is expected to be a timezone-aware datetime")
    return int(now.timestamp())


def _hits_from(
    indices: list[int],
    level: Sequence[int],
    region_id: Sequence[str | None],
    matched_at: Sequence[int],
    offset: int,
    regions: RiskIndex,
) -> dict[int, Hit]:
    """Per place, the higher of the lookups at the start and at the end of the stay."""
    hits: dict[int, Hit] = {}
    n = len(indices)
    for j, i in enumerate(indices):
        a, b = offset + j, offset + n + j
        best = b if level[b] >= level[a] else a
        code = int(level[best])
        if code:
            rid = region_id[best]
            region = regions.get(rid)
            hits[i] = Hit(code, rid, region.name if region is not None else rid, int(matched_at[best]))
    return hits


def _reason(rule_id: str, description: str, evidence: list[Evidence], tz) -> Reason:  # noqa: ANN001
    """The reason of a fired rule, led by its first evidence that names a region (else its first).

    Built by validation: checking these few trusted values in pydantic-core is cheaper than `model_construct`.
    """
    if not evidence:
        return Reason(rule=rule_id, text=description, region_id=None, level=None, at=None)
    lead = evidence[0]
    for e in evidence:
        if e.region_id is not None:
            lead = e
            break
    text = f"{description}: {lead.text}" if len(evidence) == 1 else f"{description}: " + "; ".join([e.text for e in evidence])
    at = None if lead.at is None else datetime.fromtimestamp(lead.at, tz)
    return Reason(rule=rule_id, text=text, region_id=lead.region_id, level=lead.level, at=at)


@lru_cache(maxsize=65_536)
def _age(birth: int, today: date) -> int:
    """Whole years since a birth date (an ordinal); birth dates recur across people, so they are remembered."""
    return age_on(date.fromordinal(birth), today)


@lru_cache(maxsize=64)
def _due(now: datetime, tz: tzinfo, minutes: int) -> datetime:
    """Acceptance deadline of an action; a batch shares `now`, so each action's is computed once."""
    return now.astimezone(tz) + timedelta(minutes=minutes)


def decide(facts: Facts, rules: Rules, now: datetime) -> Verdict:
    """Run every rule on resolved facts; the most severe action wins, every rule that fired is kept."""
    fired: list[tuple[str, Reason, Action]] = []
    for rule in rules.rules:
        evidence = rule.check(facts)
        if evidence is not None:
            fired.append((rule.id, _reason(rule.id, rule.description, evidence, rules.tz), rule.action))
    state = facts.state
    if not fired:
        clear = rules.clear
        return Verdict(
            state.person_key, state.masked_id, state.name, state.phone, clear.name, clear.severity, clear.duration_days,
            None, (), (), rules.version, facts.community, now, state.newest_id,
        )
    fired.sort(key=lambda f: -f[2].severity)
    address = state.declaration.address if state.declaration is not None else ""
    action = fired[0][2]
    due = None
    if action.name != rules.clear.name and action.accept_within_minutes is not None:
        due = _due(now, rules.tz, action.accept_within_minutes)
    return Verdict(
        state.person_key, state.masked_id, state.name, state.phone, action.name, action.severity, action.duration_days,
        due, tuple([f[0] for f in fired]), tuple([f[1] for f in fired]), rules.version, facts.community, now,
        state.newest_id, address,
    )


def evaluate(state: PersonState, rules: Rules, regions: RiskIndex, communities: CommunityIndex, now: datetime) -> Verdict:
    """The verdict for one person at `now` (places looked up as of the time the person was there)."""
    return evaluate_many([state], rules, regions, communities, now)[0]


#: People evaluated together: enough to amortise each vectorised lookup, few enough that their
#: states are still in the CPU cache when the rules run after the lookups.
_BATCH = 4096


def evaluate_many(
    states: Sequence[PersonState], rules: Rules, regions: RiskIndex, communities: CommunityIndex, now: datetime
) -> list[Verdict]:
    """Verdicts for many people at one time, with one risk lookup and one community lookup per batch of people."""
    t_now = _check_now(now)
    if len(states) <= _BATCH:
        return _evaluate_batch(states, t_now, rules, regions, communities, now)
    verdicts: list[Verdict] = []
    for start in range(0, len(states), _BATCH):
        verdicts += _evaluate_batch(states[start:start + _BATCH], t_now, rules, regions, communities, now)
    return verdicts


def _evaluate_batch(
    states: Sequence[PersonState], t_now: int, rules: Rules, regions: RiskIndex, communities: CommunityIndex, now: datetime
) -> list[Verdict]:
    floor = t_now - rules.windows.lookback
    pre = timedelta(seconds=rules.windows.pre_designation)
    # One pass gathers, per person, the places worth a risk lookup (inside the lookback, not in the
    # future; looked up at the start and at the end of the stay) and the candidate points for the
    # community, best first: the destination, then the latest checkpoint.
    per_state: list[list[int]] = []
    per_points: list[int] = []
    xs: list[float] = []
    ys: list[float] = []
    ts: list[int] = []
    cx: list[float] = []
    cy: list[float] = []
    none: list[int] = []
    for state in states:
        count = 0
        d = state.declaration
        if d is not None and d.submitted >= floor:
            cx.append(d.lon)
            cy.append(d.lat)
            count = 1
        places = state.places
        if not places:
            per_state.append(none)
            per_points.append(count)
            continue
        idx = []
        scan = None
        for i, p in enumerate(places):
            if p.t_to >= floor:
                if p.t_from <= t_now:
                    idx.append(i)
                if p.kind == "scan" and (scan is None or (p.t_to, p.event_id, p.seq) > (scan.t_to, scan.event_id, scan.seq)):
                    scan = p
        per_state.append(idx)
        if idx:
            chosen = [places[i] for i in idx]
            lons = [p.lon for p in chosen]
            lats = [p.lat for p in chosen]
            xs += lons
            ys += lats
            ts += [p.t_from for p in chosen]
            xs += lons
            ys += lats
            ts += [p.t_to for p in chosen]
        if scan is not None:
            cx.append(scan.lon)
            cy.append(scan.lat)
            count += 1
        per_points.append(count)
    # Lists, not arrays, from here on: the per-person loop indexes them, and a list is far cheaper to index.
    if xs:
        found = regions.lookup_many(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64), np.asarray(ts, dtype=np.int64), pre)
        level, region_id, matched_at = found.level.tolist(), found.region_id.tolist(), found.matched_at.tolist()
    else:
        level = region_id = matched_at = []
    codes = communities.communities_at(np.asarray(cx, dtype=np.float64), np.asarray(cy, dtype=np.float64)).tolist() if cx else []
    verdicts = []
    offset = 0
    c_offset = 0
    tz = rules.tz
    today = now.astimezone(tz).date()
    no_hits: dict[int, Hit] = {}  # shared: the rules only read it
    for state, idx, count in zip(states, per_state, per_points, strict=True):
        hits = _hits_from(idx, level, region_id, matched_at, offset, regions) if idx else no_hits
        offset += 2 * len(idx)
        community = UNASSIGNED
        for code in codes[c_offset:c_offset + count]:
            if code is not None:
                community = code
                break
        c_offset += count
        age = _age(state.birth, today) if state.birth > 0 else None
        verdicts.append(decide(Facts(state, t_now, tz, hits, community, age), rules, now))
    return verdicts


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()


def case_id_for(person_key: str, opening_event_id: str) -> str:
    """Deterministic case id for one flagged episode, named by the event that opened it."""
    return "case-" + _digest(person_key, opening_event_id)[:20]


def message_id_for(person_key: str, case_id: str, action: str, rules_version: str, community: str = "") -> str:
    """Deterministic message id: the same person, episode, action, rules version and community give the same id."""
    return "msg-" + _digest(person_key, case_id, action, rules_version, community)[:24]


def route(previous: LastVerdict | None, verdict: Verdict, *, clear_action: str = CLEAR) -> TriageMessage | None:
    """A triage message when the action was raised, lowered or cleared, or the person moved to another
    community while flagged; None when nothing changed. A clearance goes to the community holding the case.
    """
    if previous is None:
        if verdict.action == clear_action:
            return None
    elif previous.action == verdict.action and (
        verdict.action == clear_action or not previous.community or previous.community == verdict.community
    ):
        return None
    if previous is None or previous.action == clear_action:
        case_id = case_id_for(verdict.person_key, verdict.trigger_event_id)
    else:
        case_id = previous.case_id
    community = verdict.community
    if verdict.action == clear_action and previous is not None and previous.community:
        community = previous.community
    return TriageMessage.model_construct(
        message_id=message_id_for(verdict.person_key, case_id, verdict.action, verdict.rules_version, community),
        case_id=case_id,
        person_key=verdict.person_key,
        masked_id=verdict.masked_id,
        name=verdict.name,
        phone=verdict.phone,
        community=community,
        action=verdict.action,
        previous_action=None if previous is None else previous.action,
        severity=verdict.severity,
        due_at=verdict.due_at,
        reasons=list(verdict.reasons),
        rules_version=verdict.rules_version,
        flagged_at=verdict.evaluated_at,
        source_event_ids=[verdict.trigger_event_id] if verdict.trigger_event_id else [],
        address=verdict.address,
    )


def remember(state: PersonState, message: TriageMessage | None) -> PersonState:
    """The state with the message it was last sent; the same object when nothing was sent."""
    if message is None:
        return state
    at = int(message.flagged_at.timestamp())
    last = LastVerdict(
        message.action, message.severity, message.rules_version, message.case_id, message.message_id, at, message.community
    )
    return _remember(state, last)


@dataclass(frozen=True, slots=True)
class PersonDecision:
    """One scanned person's part of a checkpoint decision."""

    masked_id: str
    action: str
    severity: int
    reasons: tuple[Reason, ...]

    @classmethod
    def from_json(cls, document: dict) -> PersonDecision:
        """A person's part as another worker answered it (the `people` item of `CheckpointDecision.to_json`)."""
        reasons = tuple(Reason.model_validate(r) for r in document.get("reasons", ()))
        return cls(str(document["masked_id"]), str(document["action"]), int(document["severity"]), reasons)


@dataclass(frozen=True, slots=True)
class CheckpointDecision:
    """What the checkpoint gets back for one vehicle: pass or hold, and why for each person."""

    decision: Literal["pass", "hold"]
    people: tuple[PersonDecision, ...]

    def to_json(self) -> dict:
        return {
            "decision": self.decision,
            "people": [
                {
                    "masked_id": p.masked_id,
                    "action": p.action,
                    "severity": p.severity,
                    "reasons": [r.model_dump(mode="json", exclude_none=True) for r in p.reasons],
                }
                for p in self.people
            ],
        }


def checkpoint_decision(
    verdicts: Sequence[Verdict | PersonDecision], rules: Rules, *, hold_action: str = "hold"
) -> CheckpointDecision:
    """`hold` when anyone on board gets `hold_action` or anything more severe; else `pass`.

    A person's part may come as a local verdict or as another worker's answer (`PersonDecision.from_json`).
    """
    if not verdicts:
        raise PipelineError("checkpoint_decision needs the verdicts of at least one person, got none")
    if hold_action not in rules.actions:
        raise PipelineError(f"hold_action was {hold_action!r} but the rules define only {', '.join(rules.actions)}")
    threshold = rules.actions[hold_action].severity
    people = tuple(v if isinstance(v, PersonDecision) else PersonDecision(v.masked_id, v.action, v.severity, v.reasons)
                   for v in verdicts)
    held = any(p.severity >= threshold for p in people)
    return CheckpointDecision("hold" if held else "pass", people)

