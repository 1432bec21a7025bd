"""The join: fold events into people's states, evaluate, and decide whether to route.

The pure function the streaming join agent calls per batch of person events (one vectorised risk
lookup for everybody in the batch), so the agent holds no rule logic. A person with no events in
the batch is re-evaluated as is (what a retroactive sweep asks for).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from geo.communities import CommunityIndex
from geo.regions import RiskIndex
from pipeline.contacts import Exposure, with_exposures
from pipeline.events import PersonEvent, TriageMessage
from pipeline.management import NONE, Management, Notice, announce, exposures_of, manage, view
from pipeline.rules import Rules
from pipeline.state import PersonState, apply_many
from pipeline.triage import Verdict, evaluate_many, remember, route

__all__ = ["Outcome", "managed", "step_many"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One person's result of a batch: state before and after, the verdict, and the message if any."""

    before: PersonState
    after: PersonState
    verdict: Verdict
    message: TriageMessage | None
    events: tuple[PersonEvent, ...]
    management: Management = NONE
    notices: tuple[Notice, ...] = field(default=())


def step_many(
    batch: Sequence[tuple[PersonState, Sequence[PersonEvent]]],
    rules: Rules,
    regions: RiskIndex,
    communities: CommunityIndex,
    now: datetime,
    exposures: Mapping[str, Sequence[Exposure]] | None = None,
) -> list[Outcome]:
    """For each (state, events of that person): fold, evaluate once, route once; aligned with `batch`.

    `exposures` (person key -> contact exposures) are folded into those people's verdicts.
    """
    folded = [apply_many(state, events, horizon=rules.horizon) if events else state for state, events in batch]
    verdicts = evaluate_many(folded, rules, regions, communities, now)
    if exposures:
        verdicts = [with_exposures(v, exposures[v.person_key], rules, now) if v.person_key in exposures else v
                    for v in verdicts]
    outcomes = []
    t_now = int(now.timestamp())
    for (before, events), state, verdict in zip(batch, folded, verdicts, strict=True):
        message = route(state.last, verdict)
        after, seen, notices = managed(remember(state, message), verdict, rules, t_now)
        outcomes.append(Outcome(before, after, verdict, message, tuple(events), seen, tuple(notices)))
    return outcomes


def managed(state: PersonState, verdict: Verdict, rules: Rules, now: int) -> tuple[PersonState, Management, list[Notice]]:
    """The state with its management after `verdict` (the triage message already remembered), the management
    at `now` and what to tell the community about it."""
    case_id = state.last.case_id if state.last is not None else ""
    record = manage(state.managed, state, rules, verdict.action, exposures_of(rules, verdict.action, verdict.reasons),
                    case_id, now)
    if record is None and state.managed is None:
        return state, NONE, []
    seen = view(record, state, rules, now)
    record, notices = announce(record, seen, now)
    if notices:
        seen = view(record, state, rules, now)  # as told: a release announced needs no further look
    if record != state.managed:
        state = msgspec.structs.replace(state, managed=record)
    return state, seen, notices

