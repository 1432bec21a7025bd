"""Transfer and reception stages of a case: dispatched → picked_up → received (at which site, by whom).

Pure. A case keeps its stages as small rows; `stage_problem` says why a stage cannot be recorded now,
`stage_times` gives the transfer time (accepted → received) and the reception time (arrival at the site →
received) the dashboard and the daily report show.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pipeline.events import LoopMessage

__all__ = ["STAGED_ACTIONS", "STAGES", "StageKind", "StageRow", "stage_message", "stage_problem", "stage_row",
           "stage_times"]

StageKind = Literal["dispatched", "picked_up", "received"]
STAGES: tuple[str, ...] = ("dispatched", "picked_up", "received")
#: The actions whose people are moved to a site: a designated hospital, or a centralized isolation site.
STAGED_ACTIONS: tuple[str, ...] = ("transfer", "centralized_isolation")
#: (stage, at, by, site, arrived at the site or ""), times ISO 8601
StageRow = tuple[str, str, str, str, str]


def stage_row(kind: str, at: datetime, by: str, site: str, arrived_at: datetime | None) -> StageRow:
    """The row a case keeps for one stage."""
    return (kind, at.isoformat(), by, site, "" if arrived_at is None else arrived_at.isoformat())


def stage_problem(action: str, recorded: tuple[StageRow, ...], kind: str, site: str) -> str | None:
    """Why `kind` cannot follow the stages `recorded` for a case of `action`; None when it can (or repeats one)."""
    if kind not in STAGES:
        return f"unknown stage {kind!r}; expected one of {', '.join(STAGES)}"
    if action not in STAGED_ACTIONS:
        return f"a case of {action!r} has no transfer stages (only {', '.join(STAGED_ACTIONS)})"
    done = [row[0] for row in recorded]
    if kind in done:
        return None
    expected = STAGES[len(done)] if len(done) < len(STAGES) else None
    if kind != expected:
        return f"stage {kind!r} cannot come next: the case has {', '.join(done) or 'no stage yet'}; next is {expected!r}"
    if kind == "received" and not site.strip():
        return "stage 'received' needs the site that received the person"
    return None


def stage_times(accepted_at: datetime | None, recorded: tuple[StageRow, ...]) -> dict[str, float | None]:
    """Minutes from acceptance to reception (transfer) and from arrival at the site to reception (reception)."""
    rows = {row[0]: row for row in recorded}
    received = rows.get("received")
    if received is None:
        return {"transfer_minutes": None, "reception_minutes": None}
    at = datetime.fromisoformat(received[1])
    transfer = None if accepted_at is None else round((at - accepted_at).total_seconds() / 60, 1)
    arrived = received[4]
    reception = round((at - datetime.fromisoformat(arrived)).total_seconds() / 60, 1) if arrived else None
    return {"transfer_minutes": transfer, "reception_minutes": reception}


def stage_message(case_id: str, person_key: str, community: str, action: str, shown: Mapping[str, Any],
                  row: StageRow, accepted_at: datetime | None, recorded: tuple[StageRow, ...]) -> LoopMessage:
    """The `stage` message for the community's queue (`shown`: the case's latest triage message, for who it is)."""
    kind, at, by, site, arrived = row
    digest = hashlib.sha256("|".join((case_id, "stage", kind)).encode()).hexdigest()[:24]
    return LoopMessage(
        kind="stage", message_id="msg-" + digest, case_id=case_id, person_key=person_key,
        masked_id=str(shown.get("masked_id", "")), name=str(shown.get("name", "")), phone=str(shown.get("phone", "")),
        community=community, action=action, at=datetime.fromisoformat(at), address=str(shown.get("address", "")),
        detail={"stage": kind, "by": by, "site": site, "arrived_at": arrived or None, **stage_times(accepted_at, recorded)},
    )
