"""The per-event join: fold an event into a person's state, evaluate, and decide whether to route.

One pure function the streaming join agent calls per person event (and, with no event, for the
re-evaluation a retroactive sweep asks for), so the agent holds no rule logic.
"""

from __future__ import annotations

from datetime import datetime

from geo.communities import CommunityIndex
from geo.regions import RiskIndex
from pipeline.events import PersonEvent, TriageMessage
from pipeline.rules import Rules
from pipeline.state import PersonState, apply
from pipeline.triage import Verdict, evaluate, remember, route

__all__ = ["step"]


def step(
    state: PersonState,
    event: PersonEvent | None,
    rules: Rules,
    regions: RiskIndex,
    communities: CommunityIndex,
    now: datetime,
) -> tuple[PersonState, Verdict, TriageMessage | None]:
    """(new state, verdict, message or None): the message only when the action changed."""
    new = state if event is None else apply(state, event, horizon=rules.horizon)
    verdict = evaluate(new, rules, regions, communities, now)
    message = route(new.last, verdict)
    return remember(new, message), verdict, message
