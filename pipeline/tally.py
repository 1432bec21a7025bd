"""Mergeable dashboard tallies: each worker tallies the cases of its own partitions, the serving worker merges.

A `Tally` holds only sums, maxima and the overdue cases themselves, so `merge` of the workers' tallies is
the tally of the district; `summary` turns it into the command centre's figures (what
`pipeline.reports.district_summary` gives for the same cases). Pure: cases in, JSON-shaped data out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.cases import Case
from pipeline.errors import PipelineError
from pipeline.requests import median_minutes, request_status, response_minutes
from pipeline.stages import STAGED_ACTIONS, stage_times

__all__ = ["OverdueCase", "Tally", "merge", "summary", "tally_cases"]


@dataclass(frozen=True, slots=True)
class OverdueCase:
    """An open case past its due time, as the dashboard lists it."""

    case_id: str
    community: str
    street: str | None
    masked_id: str
    action: str
    due_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "community": self.community, "street": self.street,
                "masked_id": self.masked_id, "action": self.action,
                "due_at": None if self.due_at is None else self.due_at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OverdueCase:
        due = data.get("due_at")
        return cls(str(data["case_id"]), str(data["community"]), data.get("street"), str(data.get("masked_id", "")),
                   str(data["action"]), None if due is None else datetime.fromisoformat(due))


@dataclass(frozen=True)
class Tally:
    """Sums over a set of cases (one worker's partitions, or the district after `merge`) and run counters.

    `counters` are per-worker figures since start (inputs, dead letters by reason, latency sums, messages by
    action): they add up across workers like the case figures do.
    """

    cases_total: int = 0
    cases_resolved: int = 0
    cases_closed: int = 0
    open_by_action: Mapping[str, int] = field(default_factory=dict)
    open_by_community: Mapping[str, int] = field(default_factory=dict)
    overdue_by_community: Mapping[str, int] = field(default_factory=dict)
    open_by_severity: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    overdue: tuple[OverdueCase, ...] = ()
    counters: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: unanswered requests per street: {"open": n, "overdue": n} (overdue: past the answer deadline)
    requests: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    response_minutes: tuple[float, ...] = ()
    #: transfers accepted or under way and not yet received (`transfer_row`), and the minutes of those received
    transfers: tuple[Mapping[str, Any], ...] = ()
    transfer_minutes: tuple[float, ...] = ()
    reception_minutes: tuple[float, ...] = ()
    transfers_received: int = 0

    @property
    def cases_open(self) -> int:
        return sum(self.open_by_community.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "cases_total": self.cases_total, "cases_resolved": self.cases_resolved, "cases_closed": self.cases_closed,
            "open_by_action": dict(self.open_by_action), "open_by_community": dict(self.open_by_community),
            "overdue_by_community": dict(self.overdue_by_community),
            "open_by_severity": {c: {str(s): n for s, n in by.items()} for c, by in self.open_by_severity.items()},
            "overdue": [o.to_json() for o in self.overdue],
            "counters": {name: dict(values) for name, values in self.counters.items()},
            "requests": {k: dict(v) for k, v in self.requests.items()}, "response_minutes": list(self.response_minutes),
            "transfers": [dict(t) for t in self.transfers], "transfer_minutes": list(self.transfer_minutes),
            "reception_minutes": list(self.reception_minutes), "transfers_received": self.transfers_received,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tally:
        """Inverse of `to_json`; `PipelineError` naming the problem when `data` is not a tally."""
        try:
            return cls(
                cases_total=int(data["cases_total"]), cases_resolved=int(data["cases_resolved"]),
                cases_closed=int(data["cases_closed"]),
                open_by_action={str(k): int(v) for k, v in data["open_by_action"].items()},
                open_by_community={str(k): int(v) for k, v in data["open_by_community"].items()},
                overdue_by_community={str(k): int(v) for k, v in data["overdue_by_community"].items()},
                open_by_severity={str(c): {int(s): int(n) for s, n in by.items()}
                                  for c, by in data["open_by_severity"].items()},
                overdue=tuple(OverdueCase.from_json(o) for o in data["overdue"]),
                counters={str(k): {str(n): float(v) for n, v in values.items()} for k, values in data["counters"].items()},
                requests={str(k): {str(n): int(v) for n, v in by.items()} for k, by in data.get("requests", {}).items()},
                response_minutes=tuple(float(v) for v in data.get("response_minutes", ())),
                transfers=tuple(dict(t) for t in data.get("transfers", ())),
                transfer_minutes=tuple(float(v) for v in data.get("transfer_minutes", ())),
                reception_minutes=tuple(float(v) for v in data.get("reception_minutes", ())),
                transfers_received=int(data.get("transfers_received", 0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PipelineError(f"not a dashboard tally: {type(exc).__name__} {exc}") from None


def _check_aware(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise PipelineError(f"now was {now!r} but is expected to be a timezone-aware datetime")


def tally_cases(
    cases: Iterable[tuple[Case, Mapping[str, Any]]],
    now: datetime,
    counters: Mapping[str, Mapping[str, float]] | None = None,
) -> Tally:
    """The tally of `cases` (each with its latest triage message, for the masked ID) at `now`."""
    _check_aware(now)
    total = resolved = closed = 0
    by_action: Counter[str] = Counter()
    by_community: Counter[str] = Counter()
    late: Counter[str] = Counter()
    severities: dict[str, Counter[int]] = {}
    overdue: list[OverdueCase] = []
    after = _After()
    for case, message in cases:
        total += 1
        after.add(case, message, now)
        status = case.status
        if status == "resolved":
            resolved += 1
        elif status == "closed":
            closed += 1
        if status not in ("open", "accepted"):
            continue
        by_action[case.action] += 1
        by_community[case.community] += 1
        if case.severity > 0:
            severities.setdefault(case.community, Counter())[case.severity] += 1
        if status == "open" and case.due_at is not None and case.due_at <= now:
            late[case.community] += 1
            overdue.append(OverdueCase(case.case_id, case.community, case.street, str(message.get("masked_id", "")),
                                       case.action, case.due_at))
    return Tally(total, resolved, closed, dict(by_action), dict(by_community), dict(late),
                 {c: dict(s) for c, s in severities.items()}, tuple(overdue),
                 {k: dict(v) for k, v in (counters or {}).items()}, **after.fields())


@dataclass
class _After:
    """What a tally gathers after triage: unanswered requests per street, response minutes, transfers."""

    requests: dict[str, Counter[str]] = field(default_factory=dict)
    response: list[float] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    transfer: list[float] = field(default_factory=list)
    reception: list[float] = field(default_factory=list)
    received: int = 0

    def add(self, case: Case, message: Mapping[str, Any], now: datetime) -> None:
        for row in case.requests:
            status = request_status(row, now)
            if status == "answered":
                self.response.append(response_minutes(row) or 0.0)
            else:
                by = self.requests.setdefault(case.street or "", Counter())
                by["open"] += 1
                by["overdue"] += status == "overdue"
        if case.action not in STAGED_ACTIONS:
            return
        times = stage_times(case.accepted_at, case.stages)
        if any(row[0] == "received" for row in case.stages):
            self.received += 1
            if times["transfer_minutes"] is not None:
                self.transfer.append(times["transfer_minutes"])
            if times["reception_minutes"] is not None:
                self.reception.append(times["reception_minutes"])
        elif case.is_open and (case.accepted_at is not None or case.stages):
            since = case.accepted_at
            self.transfers.append({
                "case_id": case.case_id, "community": case.community, "street": case.street,
                "masked_id": str(message.get("masked_id", "")), "action": case.action,
                "stage": case.stages[-1][0] if case.stages else None,
                "accepted_at": None if since is None else since.isoformat(),
                "minutes_since_accepted": None if since is None else round((now - since).total_seconds() / 60, 1)})

    def fields(self) -> dict[str, Any]:
        return {"requests": {k: {"open": v["open"], "overdue": v["overdue"]} for k, v in self.requests.items()},
                "response_minutes": tuple(self.response), "transfers": tuple(self.transfers),
                "transfer_minutes": tuple(self.transfer), "reception_minutes": tuple(self.reception),
                "transfers_received": self.received}


def merge(tallies: Iterable[Tally]) -> Tally:
    """The tally of the union of the tallies' cases (their case sets must not overlap) and their summed counters."""
    total = resolved = closed = 0
    by_action: Counter[str] = Counter()
    by_community: Counter[str] = Counter()
    late: Counter[str] = Counter()
    severities: dict[str, Counter[int]] = {}
    overdue: dict[str, OverdueCase] = {}
    counters: dict[str, Counter[str]] = {}
    requests: dict[str, Counter[str]] = {}
    response: list[float] = []
    transfers: dict[str, Mapping[str, Any]] = {}
    transfer: list[float] = []
    reception: list[float] = []
    received = 0
    for t in tallies:
        received += t.transfers_received
        for street, by in t.requests.items():
            requests.setdefault(street, Counter()).update(by)
        response += t.response_minutes
        transfers.update((str(r["case_id"]), r) for r in t.transfers)
        transfer += t.transfer_minutes
        reception += t.reception_minutes
        total += t.cases_total
        resolved += t.cases_resolved
        closed += t.cases_closed
        by_action.update(t.open_by_action)
        by_community.update(t.open_by_community)
        late.update(t.overdue_by_community)
        for code, by in t.open_by_severity.items():
            severities.setdefault(code, Counter()).update(by)
        overdue.update((o.case_id, o) for o in t.overdue)
        for name, values in t.counters.items():
            counters.setdefault(name, Counter()).update(values)
    return Tally(total, resolved, closed, dict(by_action), dict(by_community), dict(late),
                 {c: dict(s) for c, s in severities.items()}, tuple(overdue.values()),
                 {k: dict(v) for k, v in counters.items()},
                 {k: {"open": v["open"], "overdue": v["overdue"]} for k, v in requests.items()}, tuple(response),
                 tuple(transfers.values()), tuple(transfer), tuple(reception), received)


def summary(
    tally: Tally,
    now: datetime,
    max_severity: int,
    *,
    zone: ZoneInfo | None = None,
    names: Mapping[str, str] | None = None,
    streets: Mapping[str, str | None] | None = None,
    action_texts: Mapping[str, str] | None = None,
    top: int = 10,
) -> dict[str, Any]:
    """The command centre's totals from a tally: open cases by action, community and street (most open
    first), the overdue cases themselves (due time in `zone`) and the map colours."""
    from pipeline.reports import UNASSIGNED, UNASSIGNED_STREET, colour_for

    _check_aware(now)
    names = {**UNASSIGNED, **(names or {})}
    streets = streets or {}
    texts = action_texts or {}
    by_community = tally.open_by_community
    late = tally.overdue_by_community

    def street_of(code: str) -> str:
        return streets.get(code) or UNASSIGNED_STREET

    communities = [
        {"code": code, "name": names.get(code, code), "street": street_of(code), "open": n, "overdue": late.get(code, 0)}
        for code, n in sorted(by_community.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    by_street: dict[str, dict[str, Any]] = {}
    for row in communities:
        entry = by_street.setdefault(row["street"], {"street": row["street"], "open": 0, "overdue": 0, "communities": []})
        entry["open"] += row["open"]
        entry["overdue"] += row["overdue"]
        entry["communities"].append(row)

    def iso(t: datetime | None) -> str | None:
        return None if t is None else (t.astimezone(zone) if zone is not None else t).isoformat()

    return {
        "cases_total": tally.cases_total,
        "cases_open": tally.cases_open,
        "cases_resolved": tally.cases_resolved,
        "cases_closed": tally.cases_closed,
        "cases_overdue": len(tally.overdue),
        "open_by_action": dict(sorted(tally.open_by_action.items())),
        "open_by_community": dict(sorted(by_community.items())),
        "top_communities": communities[:top],
        "streets": sorted(by_street.values(), key=lambda s: (-s["open"], s["street"])),
        "overdue": [
            {"case_id": o.case_id, "community": o.community, "community_name": names.get(o.community, o.community),
             "street": o.street, "masked_id": o.masked_id, "action": o.action, "action_text": texts.get(o.action, o.action),
             "due_at": iso(o.due_at),
             "minutes_late": None if o.due_at is None else round((now - o.due_at).total_seconds() / 60, 1)}
            for o in sorted(tally.overdue, key=lambda o: (o.due_at or now, o.case_id))
        ],
        "colours": {code: colour_for(max(by), max_severity) for code, by in tally.open_by_severity.items() if by},
        "requests": {
            "open": sum(v.get("open", 0) for v in tally.requests.values()),
            "overdue": sum(v.get("overdue", 0) for v in tally.requests.values()),
            "answered": len(tally.response_minutes),
            "median_response_minutes": median_minutes(tally.response_minutes),
            "streets": [{"street": s or UNASSIGNED_STREET, "open": v.get("open", 0), "overdue": v.get("overdue", 0)}
                        for s, v in sorted(tally.requests.items(), key=lambda kv: (-kv[1].get("open", 0), kv[0]))],
        },
        "transfers": {
            "in_progress": [{**t, "street": t.get("street") or UNASSIGNED_STREET,
                             "community_name": names.get(str(t["community"]), str(t["community"])),
                             "accepted_at": iso(datetime.fromisoformat(t["accepted_at"])) if t.get("accepted_at") else None}
                            for t in sorted(tally.transfers, key=lambda t: (str(t.get("accepted_at") or ""), str(t["case_id"])))],
            "received": tally.transfers_received,
            "median_transfer_minutes": median_minutes(tally.transfer_minutes),
            "median_reception_minutes": median_minutes(tally.reception_minutes),
        },
    }
