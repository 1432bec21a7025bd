"""Verdicts and routing: person state + geography + rules -> action, reasons, community; changes -> messages.

`evaluate` resolves the person's places against the risk index (as of the time they were there) and
runs every compiled rule; the most severe action wins and every rule that fired is reported.
`evaluate_many` does the same for many people with one vectorised geo lookup. `route` turns a verdict
into a `TriageMessage` only when the action changed; `remember` records what was sent in the state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import numpy as np

from geo.communities import CommunityIndex
from geo.regions import RiskIndex
from pipeline.conditions import Evidence, Facts, Hit
from pipeline.errors import PipelineError
from pipeline.events import Reason, TriageMessage
from pipeline.identity import age_on
from pipeline.rules import Action, Rules
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


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of the rules for one person at one time."""

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


def _lookup_points(state: PersonState, now: int, lookback: int) -> list[int]:
    """Indices of the places worth a geo lookup: inside the lookback, not in the future."""
    floor = now - lookback
    return [i for i, p in enumerate(state.places) if p.t_to >= floor and p.t_from <= now]


def _hits_from(
    indices: list[int],
    state: PersonState,
    level: np.ndarray,
    region_id: np.ndarray,
    matched_at: np.ndarray,
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


def _community_point(state: PersonState, now: int, lookback: int) -> list[tuple[float, float]]:
    """Candidate points for the community, best first: destination, then the latest checkpoint."""
    points = []
    d = state.declaration
    if d is not None and d.submitted >= now - lookback:
        points.append((d.lon, d.lat))
    scan = None
    for p in state.places:
        if p.kind == "scan" and p.t_to >= now - lookback and (scan is None or p.order > scan.order):
            scan = p
    if scan is not None:
        points.append((scan.lon, scan.lat))
    return points


def _reason(rule_id: str, description: str, evidence: list[Evidence], tz) -> Reason:  # noqa: ANN001
    lead = next((e for e in evidence if e.region_id is not None), evidence[0] if evidence else None)
    text = description if not evidence else f"{description}: " + "; ".join(e.text for e in evidence)
    at = None
    if lead is not None and lead.at is not None:
        at = datetime.fromtimestamp(lead.at, tz)
    return Reason.model_construct(
        rule=rule_id,
        text=text,
        region_id=None if lead is None else lead.region_id,
        level=None if lead is None else lead.level,
        at=at,
    )


def decide(facts: Facts, rules: Rules, now: datetime) -> Verdict:
    """Run every rule on resolved facts; the most severe action wins, every rule that fired is kept."""
    fired: list[tuple[str, Reason, Action]] = []
    for rule in rules.rules:
        evidence = rule.check(facts)
        if evidence is not None:
            fired.append((rule.id, _reason(rule.id, rule.description, evidence, rules.tz), rule.action))
    if fired:
        fired.sort(key=lambda f: -f[2].severity)
        action = fired[0][2]
    else:
        action = rules.clear
    due = None
    if action.name != rules.clear.name and action.accept_within_minutes is not None:
        due = now.astimezone(rules.tz) + timedelta(minutes=action.accept_within_minutes)
    state = facts.state
    return Verdict(
        person_key=state.person_key,
        masked_id=state.masked_id,
        name=state.name,
        phone=state.phone,
        action=action.name,
        severity=action.severity,
        duration_days=action.duration_days,
        due_at=due,
        rules=tuple(f[0] for f in fired),
        reasons=tuple(f[1] for f in fired),
        rules_version=rules.version,
        community=facts.community,
        evaluated_at=now,
        trigger_event_id=state.newest_id,
    )


def evaluate(state: PersonState, rules: Rules, regions: RiskIndex, communities: CommunityIndex, now: datetime) -> Verdict:
    """The verdict for one person at `now` (places looked up as of the time the person was there)."""
    return evaluate_many([state], rules, regions, communities, now)[0]


def evaluate_many(
    states: Sequence[PersonState], rules: Rules, regions: RiskIndex, communities: CommunityIndex, now: datetime
) -> list[Verdict]:
    """Verdicts for many people at one time, with one risk lookup and one community lookup for all."""
    t_now = _check_now(now)
    lookback = rules.windows.lookback
    pre = timedelta(seconds=rules.windows.pre_designation)
    per_state: list[list[int]] = []
    xs: list[float] = []
    ys: list[float] = []
    ts: list[int] = []
    for state in states:
        idx = _lookup_points(state, t_now, lookback)
        per_state.append(idx)
        places = state.places
        for i in idx:
            p = places[i]
            xs.append(p.lon)
            ys.append(p.lat)
            ts.append(p.t_from)
        for i in idx:
            p = places[i]
            xs.append(p.lon)
            ys.append(p.lat)
            ts.append(p.t_to)
    if xs:
        found = regions.lookup_many(np.asarray(xs), np.asarray(ys), np.asarray(ts, dtype=np.int64), pre)
        level, region_id, matched_at = found.level, found.region_id, found.matched_at
    else:
        level = region_id = matched_at = np.empty(0)
    community_points = [_community_point(s, t_now, lookback) for s in states]
    cx = [pt[0] for pts in community_points for pt in pts]
    cy = [pt[1] for pts in community_points for pt in pts]
    codes = communities.communities_at(np.asarray(cx, dtype=np.float64), np.asarray(cy, dtype=np.float64)) if cx else []
    verdicts = []
    offset = 0
    c_offset = 0
    today = now.astimezone(rules.tz).date()
    for state, idx, pts in zip(states, per_state, community_points, strict=True):
        hits = _hits_from(idx, state, level, region_id, matched_at, offset, regions) if idx else {}
        offset += 2 * len(idx)
        community = UNASSIGNED
        for k in range(len(pts)):
            code = codes[c_offset + k]
            if code is not None:
                community = code
                break
        c_offset += len(pts)
        born = state.birth_date
        facts = Facts(state, t_now, rules.tz, hits, community, None if born is None else _age_on(born, today))
        verdicts.append(decide(facts, rules, now))
    return verdicts


def _age_on(born: date, today: date) -> int:
    return age_on(born, today)


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()


def case_id_for(person_key: str, opening_event_id: str) -> str:
    """Deterministic case id for one flagged episode, named by the event that opened it."""
    return "case-" + _digest(person_key, opening_event_id)[:20]


def message_id_for(person_key: str, case_id: str, action: str, rules_version: str, community: str = "") -> str:
    """Deterministic message id: the same person, episode, action, rules version and community give the same id."""
    return "msg-" + _digest(person_key, case_id, action, rules_version, community)[:24]


def route(previous: LastVerdict | None, verdict: Verdict, *, clear_action: str = "clear") -> TriageMessage | None:
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


def checkpoint_decision(verdicts: Sequence[Verdict], rules: Rules, *, hold_action: str = "hold") -> CheckpointDecision:
    """`hold` when anyone on board gets `hold_action` or anything more severe; else `pass`."""
    if not verdicts:
        raise PipelineError("checkpoint_decision needs the verdicts of at least one person, got none")
    if hold_action not in rules.actions:
        raise PipelineError(f"hold_action was {hold_action!r} but the rules define only {', '.join(rules.actions)}")
    threshold = rules.actions[hold_action].severity
    people = tuple(PersonDecision(v.masked_id, v.action, v.severity, v.reasons) for v in verdicts)
    held = any(v.severity >= threshold for v in verdicts)
    return CheckpointDecision("hold" if held else "pass", people)

